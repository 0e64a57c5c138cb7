"""Recipes planned from a dataset and a time budget (`python -m unetjax.plan`).

fingerprint  what the training split holds (sizes, intensities, classes, objects)
rules        the data-driven choices, each with its reason and source
budget       width, steps and evaluation interval from timed probe runs
render       the planned config file and the --explain table
"""
