"""Sweeps: train every combination of a few settings' values, record each as a run, rank them.

A grid is a list of axes, each one setting (a ``ModelConfig`` or ``TrainConfig`` field) and its
values; its points are the Cartesian product, in the order given (the last axis varies fastest).
Each point trains a new model on the same text from the same base settings and seed, for the same
budget (steps, epochs or minutes), and is recorded in the run store with the sweep's label.

``run_sweep`` runs the points one after another in this process, or ``jobs`` at a time in
separate processes (``concurrent.futures.ProcessPoolExecutor``, spawn context), the machine's
cores divided between them (BLAS threads per job, ``charlstm_core.engine.parallel``). It yields each
point's ``PointResult`` as it ends; a diverged or failed point is a result like any other and never
stops the rest. ``rank`` orders results by best validation loss.

With a budget in steps or epochs a point's losses do not depend on ``jobs`` (same seed, same
batches); a budget in minutes trains as many steps as the time allows, which does, unless it is
first turned into each point's own steps by timing it (``calibrate``, ``--as-steps``).

Who owns what: core/sweep/grid.py the grids, points, results, ranking and the table;
core/sweep/run.py running the points (in this process or a pool of processes);
core/sweep/calibration.py minutes turned into each point's steps.
"""

from .calibration import (
    Calibration,
    calibrate,
    calibrate_point,
    end_reserve_s,
    fastest,
    steps_in,
    typical,
)
from .grid import (
    MAX_POINTS,
    SWEEPABLE,
    Axis,
    PointResult,
    SweepPoint,
    grid_points,
    parse_grid,
    point_file_name,
    rank,
    split_cores,
    sweep_label,
    usable_cores,
)
from .run import (
    NOT_STARTED,
    SweepInterrupted,
    SweepSpec,
    earlier_point_files,
    result_from_run,
    run_point,
    run_sweep,
    skipped_result,
)

__all__ = [
    "earlier_point_files",
    "MAX_POINTS",
    "NOT_STARTED",
    "SWEEPABLE",
    "Axis",
    "Calibration",
    "PointResult",
    "SweepInterrupted",
    "SweepPoint",
    "SweepSpec",
    "calibrate",
    "calibrate_point",
    "end_reserve_s",
    "fastest",
    "grid_points",
    "parse_grid",
    "point_file_name",
    "rank",
    "result_from_run",
    "run_point",
    "run_sweep",
    "skipped_result",
    "split_cores",
    "steps_in",
    "typical",
    "sweep_label",
    "usable_cores",
]
