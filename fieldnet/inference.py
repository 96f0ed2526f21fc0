"""Full-field inference by exact periodic tiling; it lives in `fieldnet.eval.inference`.

    from fieldnet.inference import predict_field
    y = predict_field(model, field, tile=64, batch=8)   # (*spatial, C_in) -> (*spatial, C_out)
    s = sample_field(model, field, noise, steps=20)     # a flow-matching run's sample
"""

from fieldnet.eval.inference import (
    field_predictor,
    jitted_forward,
    load_run,
    predict_field,
    predict_file,
    sample_field,
    tile_plan,
)
from fieldnet.eval.sampling import sample_noise, sample_stack

__all__ = ["field_predictor", "jitted_forward", "load_run", "predict_field", "predict_file",
           "sample_field", "sample_noise", "sample_stack", "tile_plan"]
