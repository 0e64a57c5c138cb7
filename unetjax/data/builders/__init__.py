"""TFDS dataset builders; importing this package registers them with tfds."""

from unetjax.data.builders import synthetic_cells

DATASETS = tuple(
    f'{name}/{config.name}'
    for name, builder in [('synthetic_cells', synthetic_cells.SyntheticCells)]
    for config in builder.BUILDER_CONFIGS)
