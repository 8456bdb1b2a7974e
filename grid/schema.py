"""The run's tables: one pyarrow schema each, the single definition of their columns.

The results store casts every frame it writes to its table's schema (columns in this
order, these types; a column a writer lacks is written as nulls; a column the schema
lacks is an error naming it), so every file of a table reads alike in pandas, pyarrow,
polars and DuckDB. The README's table list is checked against this module by
``tests/unit/test_results.py``. ``egrid evaluate-ratings`` folders hold their own
long tables (``condition``/``word``/``rating``, see :mod:`embodiment.evaluate`).
"""

from __future__ import annotations

import pyarrow as pa

#: the trial id of an untrained model (its rows in every table; transfer compares with it)
BASE = "base"

_S, _F, _I = pa.large_string(), pa.float64(), pa.int64()
#: what every row of a model's evaluation is tagged with
#: (``seed``: the trial's training seed; null for the untrained base model)
_TAGS = [("trial_id", _S), ("condition", _S), ("model", _S), ("seed", _I)]

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "trials": pa.schema(
        [
            ("trial_id", _S),
            ("condition", _S),
            ("model", _S),
            ("seed", _I),
            ("format", _S),
            ("config", _S),
            ("status", _S),
            ("eval_score", _F),
            ("eval_on", _S),
            ("steps", _I),
            ("loss_first", _F),
            ("loss_last", _F),
            ("adapter", _S),
            ("seconds", _F),
            ("train_seconds", _F),
            ("workers", _I),
            ("worker_nodes", _S),
            ("trial_node", _S),
            ("error", _S),
        ]
    ),
    "ratings": pa.schema(
        [
            *_TAGS,
            ("language", _S),
            ("concept", _S),
            ("dimension", _S),
            ("human", _F),
            ("expected", _F),
            *[(f"p{k}", _F) for k in range(6)],
            ("digit_mass", _F),
        ]
    ),
    # a trial's ratings of the validation concepts (set aside from the training split):
    # what its eval_score, and so every choice among trials, was computed from
    "validation_ratings": pa.schema(
        [
            *_TAGS,
            ("language", _S),
            ("concept", _S),
            ("dimension", _S),
            ("human", _F),
            ("expected", _F),
            *[(f"p{k}", _F) for k in range(6)],
            ("digit_mass", _F),
        ]
    ),
    # a trial's held-out ratings read through its own trained head (formats with one)
    "head_ratings": pa.schema(
        [*_TAGS, ("language", _S), ("concept", _S), ("dimension", _S), ("human", _F), ("expected", _F)]
    ),
    "embeddings": pa.schema(
        [
            *_TAGS,
            ("language", _S),
            ("concept", _S),
            ("split", _S),
            ("layer", _I),
            ("pooling", _S),
            ("vector", pa.list_(pa.float32())),
        ]
    ),
    "choices": pa.schema(
        [
            *_TAGS,
            ("index", _I),
            ("option", _S),
            ("loglik", _F),
            ("n_tokens", _I),
            ("loglik_per_token", _F),
            ("loglik_per_char", _F),
            ("prob", _F),
            ("chosen", _S),
            ("correct_option", _S),
            ("is_correct", pa.bool_()),
        ]
    ),
    "metrics": pa.schema(
        [
            *_TAGS,
            ("language", _S),
            ("eval_set", _S),
            ("metric", _S),
            ("subset", _S),
            ("dimension", _S),
            ("layer", _I),
            ("recipe", _S),
            ("standardise", _S),
            ("rdm_method", _S),
            ("compare_method", _S),
            ("value", _F),
            ("ci_low", _F),
            ("ci_high", _F),
            ("p", _F),
            ("alternative", _S),
            ("n", _I),
            ("n_dropped", _I),
            ("note", _S),
        ]
    ),
    "transfer": pa.schema(
        [
            *_TAGS,
            ("language", _S),
            ("eval_set", _S),
            ("base", _S),
            ("dimension", _S),
            ("method", _S),
            ("base_value", _F),
            ("value", _F),
            ("delta", _F),
            ("r_between", _F),
            ("z", _F),
            ("p", _F),
            ("p_holm", _F),
            ("n", _I),
            ("dimension_trained", pa.bool_()),
            ("language_trained", pa.bool_()),
            ("format_trained", pa.bool_()),
        ]
    ),
}
#: every table of a run folder, in the order they are listed
TABLES = tuple(TABLE_SCHEMAS)


def conform(name: str, table: pa.Table) -> pa.Table:
    """``table`` with exactly table ``name``'s columns, in order, cast to their types.

    Raises:
        ValueError: an unknown table, a column the schema does not have, or a value that
            does not cast (e.g. text in a number column).
    """
    if name not in TABLE_SCHEMAS:
        raise ValueError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
    schema = TABLE_SCHEMAS[name]
    extra = [c for c in table.column_names if c not in schema.names]
    if extra:
        raise ValueError(
            f"table {name!r}: column(s) {extra} are not in its schema; add them to grid/schema.py "
            "and to the README's table list"
        )
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            columns.append(column if column.type == field.type else column.cast(field.type))
        else:
            columns.append(pa.nulls(len(table), field.type))
    return pa.Table.from_arrays(columns, schema=schema)
