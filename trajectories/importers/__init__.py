"""Read recorded agent runs into `Trajectory` objects: format detection, containers, directories.

Formats (auto-detected from each row's content, or forced with ``fmt=``):

==================  ===============================================================================
``swe-agent``       SWE-agent ``.traj`` (old raw-command layout and function-calling layout)
``mini-swe-agent``  mini-swe-agent run files ``*.traj.json`` (+ ``*.report.json`` beside them for
                    ``resolved``) and bare message lists (``mswea_bash_command`` blocks; tool-call mode)
``openhands``       OpenHands event lists (JSON) and benchmark output records (JSONL)
``openai``          OpenAI chat messages with ``tool_calls``; rows ``{messages, tools?, resolved?,
                    test_result.git_patch?}`` such as SWE-Gym's
``swe-smith``       SWE-smith trajectory rows: calls in the assistant text (splits tool/xml/ticks)
``openhands-text``  OpenHands' text format (``<function=...>`` in the text, ``EXECUTION RESULT``)
``nebius``          nebius/SWE-agent-trajectories rows (system/user/ai turns, fenced commands)
``srl``             this project's own JSONL (what ``srl traj import`` writes), re-validated
==================  ===============================================================================

Rows come from any container `trajectories.rows` reads (JSONL, .jsonl.gz, JSON array or object,
Parquet, `save_to_disk` folders). A bad row is an error for that row only: `iter_file` yields one
`RowResult` per row, so a batch goes on and every failed row is named. An unrecognised row says
which format it resembles and what it is missing.

Entry points: `iter_trajectories(paths)` (streaming) and `load_trajectories(paths)` for callers that
want trajectories; `import_file` / `import_paths` for per-file reports; `import_files(paths, out)` writes
srl-swe JSONL into a folder and reports per file (what `srl traj import` runs). The reading lives in
`trajectories.importers.reader`, the writing in `trajectories.importers.batch`.
"""

from trajectories.importers.base import Imported, ImportError_, SkippedStep, TrajectoryImportError
from trajectories.importers.batch import (
    FileImport,
    ImportProgress,
    ImportReport,
    NoTrajectoryFiles,
    import_files,
)
from trajectories.importers.reader import (
    FORMATS,
    FileReport,
    RowResult,
    detect_format,
    find_files,
    import_file,
    import_paths,
    iter_file,
    iter_trajectories,
    load_trajectories,
    stem_of,
)

__all__ = [
    "FORMATS",
    "FileImport",
    "FileReport",
    "ImportError_",
    "ImportProgress",
    "ImportReport",
    "Imported",
    "NoTrajectoryFiles",
    "RowResult",
    "SkippedStep",
    "TrajectoryImportError",
    "detect_format",
    "find_files",
    "import_file",
    "import_files",
    "import_paths",
    "iter_file",
    "iter_trajectories",
    "load_trajectories",
    "stem_of",
]
