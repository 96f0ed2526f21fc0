"""Full-field inference by exact periodic tiling; it lives in `fieldnet.eval.inference`.

    from fieldnet.inference import predict_field
    y = predict_field(model, field, tile=64, batch=8)   # (*spatial, C_in) -> (*spatial, C_out)
"""

from fieldnet.eval.inference import jitted_forward, load_run, predict_field, predict_file, tile_plan

__all__ = ["jitted_forward", "load_run", "predict_field", "predict_file", "tile_plan"]
