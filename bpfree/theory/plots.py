"""Figures of a `TheoryRun`: ε_g(t) (ICLR 2024 Fig. 2b) and the alignment angles (Fig. 2c).

Simulations are drawn as markers, ODE solutions as lines of the same colour per rule; the time
axis is logarithmic, so t = 0 is left out.
"""

from __future__ import annotations

from pathlib import Path

from bpfree.core.figures import pyplot, save_figure
from bpfree.theory.result import TheoryRun

# Fig. 2c's colours: teacher dark green, degenerate solution light green, feedback orange.
_ANGLES = {
    "v_teacher": ("v ∠ ṽ (teacher)", "darkgreen"),
    "v_degenerate": ("v ∠ closest degenerate ṽ", "limegreen"),
    "v_adaptive_feedback": ("v ∠ W₁F", "darkorange"),
    "v_feedback": ("v ∠ b (FA feedback)", "purple"),
}


def _title(result: TheoryRun) -> str:
    """The run's setting in one line."""
    s = result.settings
    return f"D = {s['D']}, K = {s['K']}, M = {s['M']}, η = {s['lr']:g}, κ = {s['kappa']:g}"


def plot_generalisation_error(result: TheoryRun, path: Path) -> bool:
    """ε_g(t) of every simulation (markers) and ODE (lines); False if matplotlib is missing."""
    plt = pyplot(path)
    if plt is None:
        return False
    curves, t = result.curves(), result.times[1:]
    figure, axes = plt.subplots(figsize=(6, 4.5))
    for index, rule in enumerate(dict.fromkeys([*result.simulations, *result.odes])):
        colour = f"C{index}"
        if f"eps_g/sim/{rule}" in curves:
            axes.plot(
                t,
                curves[f"eps_g/sim/{rule}"][1:],
                "o",
                ms=3,
                color=colour,
                label=f"{rule} simulation",
            )
        if f"eps_g/ode/{rule}" in curves:
            axes.plot(t, curves[f"eps_g/ode/{rule}"][1:], "-", color=colour, label=f"{rule} ODE")
    axes.set(xscale="log", yscale="log", xlabel="t = steps / D", ylabel="ε_g", title=_title(result))
    axes.legend()
    save_figure(figure, path)
    return True


def plot_alignment(result: TheoryRun, path: Path) -> bool:
    """Angles of v with ṽ, the closest degenerate ṽ and the feedback (left) and, for AFA and
    PEPITA, |W₁F|/√D (right), per rule: ODE lines, simulation markers; False if matplotlib is
    missing."""
    plt = pyplot(path)
    if plt is None:
        return False
    curves, t = result.curves(), result.times[1:]
    rules = list(dict.fromkeys([*result.simulations, *result.odes]))
    adaptive = any(name.startswith("angle_v_adaptive_feedback/") for name in curves)
    figure, axes = plt.subplots(1, 1 + adaptive, figsize=(5.5 * (1 + adaptive), 4.5), squeeze=False)
    angle_axes, norm_axes = axes[0, 0], axes[0, -1]
    for index, rule in enumerate(rules):
        style = ["-", "--", ":", "-."][index % 4]
        for pair, (label, colour) in _ANGLES.items():
            if f"angle_{pair}/ode/{rule}" in curves:
                angle_axes.plot(
                    t,
                    curves[f"angle_{pair}/ode/{rule}"][1:],
                    style,
                    color=colour,
                    label=f"{label}, {rule} ODE",
                )
            if f"angle_{pair}/sim/{rule}" in curves:
                angle_axes.plot(
                    t, curves[f"angle_{pair}/sim/{rule}"][1:], "o", ms=2, color=colour, alpha=0.6
                )
        for source, marker in (("ode", style), ("sim", "o")):
            if f"angle_v_adaptive_feedback/{source}/{rule}" in curves:
                norm_axes.plot(
                    t,
                    curves[f"norm_S/{source}/{rule}"][1:],
                    marker,
                    ms=2,
                    color=f"C{index}",
                    label=f"{rule} {source}",
                )
    angle_axes.set(
        xscale="log",
        xlabel="t = steps / D",
        ylabel="angle [degrees]",
        ylim=(0, 180),
        title="alignment of the second layer v (dots: simulation)",
    )
    angle_axes.legend(fontsize=7)
    if adaptive:
        norm_axes.set(
            xscale="log",
            yscale="log",
            xlabel="t = steps / D",
            ylabel="|W₁F| / √D",
            title="norm of the adaptive feedback",
        )
        norm_axes.legend(fontsize=7)
    save_figure(figure, path, _title(result))
    return True
