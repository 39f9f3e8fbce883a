"""Synthesized tasks: small AST-level mutations of a function in a real release (SWE-smith's procedural
method, no model needed).

A mutation is found on the syntax tree of one function and applied as a minimal *text* edit at the
node's position, so the rest of the file (comments, formatting) is untouched and the gold patch (the
inverse edit) is a few lines. Kinds:

- ``swap_operator``: ``+`` <-> ``-``, ``<`` -> ``<=``, ``==`` <-> ``!=``, ``in`` <-> ``not in``, ``and`` <-> ``or``,
  augmented assignments (``+=`` -> ``-=``), ...
- ``invert_condition``: ``if x`` -> ``if not x`` (and ``if not x`` -> ``if x``), conditional expressions and
  comprehension filters;
- ``shift_bound``: ``range(n)`` -> ``range(n - 1)``, slice bounds, ``x[i]`` -> ``x[i + 1]``, an integer compared
  against (``n > 0`` -> ``n > 1``);
- ``drop_statement``: a statement of a block that is neither its first nor its only one (never a docstring);
- ``swap_arguments``: two adjacent positional arguments of a call;
- ``change_constant``: ``True`` <-> ``False``, other integers ``n`` -> ``n + 1``, short strings reversed.

A site is named by the function's qualified name, the kind and its index among that function's sites of
that kind (in source order), so the same recipe finds the same edit on every machine
(`find_site`). `materialize_synth` turns a recipe into the mutated commit (its tree made on top of the
release's commit with `envs.pypi.child_commit`, stored as a root commit so the agent's repository holds
no trace of the original) and the gold patch. Pure Python + git; nothing here runs tests.

The package: `mutations` (sites and edits), `statement` (problem statements from test output),
`recipe` (recipes and the mutated commit). Everything public is importable from `envs.synth`.
"""

from envs.synth.mutations import (
    KINDS,
    MutationSite,
    SynthError,
    apply_mutation,
    enumerate_mutations,
    find_site,
    is_source_file,
)
from envs.synth.recipe import (
    RECIPE_KEYS,
    diff_commits,
    file_at,
    make_recipe,
    materialize_synth,
    mutated_commit,
    recipe_id,
)
from envs.synth.statement import (
    failure_sections,
    problem_statement,
)

__all__ = [
    "KINDS",
    "MutationSite",
    "RECIPE_KEYS",
    "SynthError",
    "apply_mutation",
    "diff_commits",
    "enumerate_mutations",
    "failure_sections",
    "file_at",
    "find_site",
    "is_source_file",
    "make_recipe",
    "materialize_synth",
    "mutated_commit",
    "problem_statement",
    "recipe_id",
]
