"""The tasks a model and a dataset can have, named once: every table keyed
by task (models.TASKS, evaluation's steps and summaries, metrics'
headlines and each metric's tasks) uses these names."""

SEGMENTATION = 'segmentation'  # a class per pixel
CLASSIFICATION = 'classification'  # a class per image

# task -> the feature of a dataset's examples that holds its labels
TARGETS = {SEGMENTATION: 'mask', CLASSIFICATION: 'label'}
