"""Base config: a seed-size U-Net on the synthetic cells dataset.

Trains to a validation Dice above 0.9 in a few minutes on a 2-core CPU.
Experiment configs import this and change a few fields; any field can be
overridden on the command line, e.g. `--config.batch_size=16`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # initialisation, dropout and data order all derive from it

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = 'synthetic_cells/binary'  # TFDS name/config
  config.dataset.data_dir = ''  # TFDS data dir; '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
  # Files of datasets you downloaded yourself (isbi2012_em, drive, kvasir_seg,
  # ...; the folder for image_folder); '' = <data_dir>/downloads/manual/<name>.
  config.dataset.manual_dir = ''
  # Training on random patches of the images at their own resolution (as
  # nnU-Net; needed by the `native` datasets): 0 = whole stored images, or
  # a side or (height, width) in pixels, each divisible by 2**model.depth.
  # Validation and test then predict every whole image by a sliding window
  # of the patch size (Gaussian-blended) and score it at full resolution.
  # (A reference of any type: an int or a tuple, in files and on the command line.)
  config.dataset.patch_size = ml_collections.FieldReference(0, field_type=object)
  config.dataset.foreground_oversampling = 1 / 3  # share of patches centred on foreground
  config.dataset.pad_patches = True  # zero-pad images smaller than the patch (unscored)
  config.dataset.eval_overlap = 0.5  # overlap of neighbouring evaluation windows
  # What a segmentation model learns: 'mask' (the dataset's classes) or, for
  # datasets with instances, 'three_class' (background / interior / border
  # of each object, made from its ids; set model.n_classes = 3). Objects are
  # then found by a watershed from the predicted interiors.
  config.dataset.target = 'mask'
  config.dataset.reader_threads = 2  # grain threads reading and batching examples
  config.dataset.prefetch_batches = 4  # batches grain reads ahead

  config.model = ml_collections.ConfigDict()
  config.model.name = 'unet'  # see unetjax.models.MODELS and configs/<name>.py
  config.model.n_classes = 1  # 1 = binary (sigmoid); K = K-class softmax
  config.model.base_filters = 16  # channels of the first level, doubled per level
  # Or the channels of every level, shallow to deep (depth + 1 numbers), e.g.
  # (8, 8, 16, 32, 64): MONAI BasicUNet's slim plan, cheaper below level 0.
  config.model.level_filters = ()
  config.model.depth = 4  # poolings; image sides must be divisible by 2**depth
  # Dropout per level, shallow to deep, last = bottleneck (one number = all).
  config.model.dropout_rates = (0.1, 0.1, 0.2, 0.2, 0.3)
  # Normalisation after every convolution: 'batch', 'group' (group norm, for
  # batches of a few images), 'instance' (per channel and image) or 'none'.
  config.model.norm = 'batch'
  config.model.upsample = 'transpose'  # 'transpose' (2x2 up-conv), 'bilinear' or 'nearest'
  # In place of every ReLU: 'relu' or 'leaky_relu' (slope 0.01, MONAI DynUNet's).
  config.model.activation = 'relu'
  # Convolution kernels' initialisation: 'lecun_normal' (flax's) or
  # 'kaiming_normal' (MONAI DynUNet's: torch's kaiming_normal_, a=0.01).
  config.model.kernel_init = 'lecun_normal'

  # Data augmentation, per example on the accelerator (unetjax/augment.py).
  # Each op has a probability and a strength; all are off here, so results
  # do not change. configs/augmented.py turns on a typical set.
  config.augment = ml_collections.ConfigDict()
  config.augment.flip_horizontal_prob = 0.0  # mirror left-right
  config.augment.flip_vertical_prob = 0.0  # mirror top-bottom
  # Turn by 90, 180 or 270 degrees (equally likely); 180 only if not square.
  config.augment.rot90_prob = 0.0
  config.augment.rotate_prob = 0.0  # rotate by an angle uniform in +-rotate_degrees
  config.augment.rotate_degrees = 0.0  # max |angle|, degrees
  config.augment.scale_prob = 0.0  # zoom by a factor uniform in scale_range
  config.augment.scale_range = (1.0, 1.0)  # (min, max) zoom; > 1 enlarges the content
  config.augment.translate_prob = 0.0  # shift the content
  config.augment.translate_fraction = 0.0  # max |shift| per axis, fraction of the side
  config.augment.elastic_prob = 0.0  # smooth random warp (Simard et al. 2003)
  config.augment.elastic_alpha = 0.0  # std of each displacement component, pixels
  config.augment.elastic_sigma = 8.0  # smoothness: Gaussian std of the field, pixels
  # Where geometric ops read outside the image: 'reflect' (mirror about the
  # edge pixels), 'nearest' (repeat the edge) or 'constant' (image 0, labels 0).
  config.augment.border_mode = 'reflect'
  config.augment.brightness_prob = 0.0  # add a shift uniform in +-brightness
  config.augment.brightness = 0.0  # max |shift| of the [0, 1] intensities
  config.augment.contrast_prob = 0.0  # scale the deviation from the mean
  config.augment.contrast_range = (1.0, 1.0)  # (min, max) factor
  config.augment.gamma_prob = 0.0  # image ** gamma
  config.augment.gamma_range = (1.0, 1.0)  # (min, max) gamma
  config.augment.blur_prob = 0.0  # Gaussian blur
  config.augment.blur_sigma_range = (0.0, 0.0)  # (min, max) std, pixels
  config.augment.noise_prob = 0.0  # additive Gaussian noise
  config.augment.noise_std = 0.0  # max noise std (drawn uniform in [0, noise_std])

  config.dtype = 'float32'  # compute dtype (models.DTYPES), e.g. 'bfloat16'
  config.param_dtype = 'float32'  # parameter and optimizer-state dtype

  config.loss = ml_collections.ConfigDict()
  # A name of losses.LOSSES (unetjax/losses.py has the formulas; `python -m
  # unetjax.main --help` lists every registry's names).
  config.loss.name = 'cross_entropy_dice'
  config.loss.ce_weight = 0.5  # cross_entropy_dice = w * CE + (1 - w) * Dice
  config.loss.smooth = 1.0  # added to numerator and denominator of overlap losses
  config.loss.label_smoothing = 0.0  # cross_entropy: target (1 - a) y + a / K
  # 'border': weight each pixel's loss by the dataset's border weight map
  # (the U-Net paper's, datasets with instances; pixel-wise losses only).
  config.loss.pixel_weights = 'none'
  config.loss.focal_gamma = 2.0  # focal: CE scaled by (1 - p_t)**gamma
  config.loss.tversky_alpha = 0.3  # tversky, focal_tversky: weight of false positives
  config.loss.tversky_beta = 0.7  # tversky, focal_tversky: weight of false negatives
  config.loss.focal_tversky_gamma = 0.75  # focal_tversky: (1 - TI)**gamma
  # One weight per label class, background first (binary: 2); () = equal.
  config.loss.class_weights = ()
  config.loss.ignore_background = False  # overlap losses skip class 0 (multi-class)
  config.loss.batch_dice = False  # overlap sums over the batch, not per image
  # Deeply supervised models (UNet++): one weight per head; () = equal.
  config.loss.deep_supervision_weights = ()

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'adam'  # state.OPTIMIZERS: adam, adamw, sgd (momentum 0.9), ...
  config.optimizer.learning_rate = 3e-3  # peak learning rate
  # state.SCHEDULES: constant, warmup_cosine, poly (nnU-Net: lr * (1 - t)**0.9), ...
  config.optimizer.schedule = 'warmup_cosine'
  config.optimizer.warmup_steps = 50  # linear warm-up from 0 (warmup_cosine, poly)
  config.optimizer.weight_decay = 0.0  # decoupled weight decay (adamw only)
  config.optimizer.grad_clip_norm = 0.0  # clip gradients to this global norm; 0 = off

  config.parallel = 'jit'  # parallel.STRATEGIES: 'jit' (sharded mesh) or 'pmap'
  # pmap: batch-norm statistics over all devices, not each device's share
  # (jit always uses the global batch).
  config.sync_batch_norm = True
  config.on_nonfinite_loss = 'stop'  # 'stop' the run, or 'skip' the update
  # 'skip': the run stops once more than this share of its steps were skipped.
  config.max_skipped_fraction = 0.05
  config.batch_size = 16  # global batch, split over all devices
  config.eval_batch_size = 64  # global batch for evaluation
  config.num_train_steps = 500
  config.log_every_steps = 50  # train loss / throughput to logs
  config.eval_every_steps = 100  # validation metrics, best-model tracking
  config.checkpoint_every_steps = 100  # latest checkpoint for resuming
  config.max_checkpoints_to_keep = 2  # latest checkpoints kept in the workdir

  config.metrics = ml_collections.ConfigDict()
  config.metrics.threshold = 0.5  # sigmoid probability above which a pixel is foreground
  config.metrics.boundary_tolerance = 2.0  # pixels of slack for boundary F1
  config.metrics.surface_metrics = True  # boundary F1, HD95, ASSD (distance maps)

  config.best_metric = 'dice'  # validation metric that picks the best checkpoint
  config.best_metric_mode = 'max'  # 'max', or 'min' for loss, hd95 and assd
  config.progress_bar = True  # tqdm bar on the terminal
  return config
