"""The training set's maps, which the report (of held-out predictions) does not draw."""

from __future__ import annotations

from matplotlib.figure import Figure

from fieldnet.figures import report


def example_maps(log_rho, log_t, sim_index, *, box_size: float, density_units: str) -> Figure:
    """One row per map: log10 rho and log10 T, in the box's Mpc/h (3D: middle slice)."""
    rows = [(report.central_slice(r), report.central_slice(t), s)
            for r, t, s in zip(log_rho, log_t, sim_index, strict=True)]
    fig = Figure(figsize=(6.4, 2.7 * len(rows) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), 2, squeeze=False, sharex=True, sharey=True)
    extent = (0, box_size, 0, box_size)
    columns = [(report.log_rho_label(density_units), "cividis"),
               (report.LOG_T_LABEL, "inferno")]
    for i, (rho, t, sim) in enumerate(rows):
        for j, (image, (label, cmap)) in enumerate(zip((rho, t), columns, strict=True)):
            ax = axes[i, j]
            im = ax.imshow(image.T, origin="lower", cmap=cmap, extent=extent)
            fig.colorbar(im, ax=ax, label=label, shrink=0.9)
            ax.set_title(f"simulation {sim}", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[i, 0].set_ylabel("[Mpc/$h$]", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("[Mpc/$h$]", fontsize=8)
    return fig
