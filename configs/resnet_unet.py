"""U-Net with a ResNet-34 encoder, laid out as segmentation_models_pytorch's
`Unet(encoder_name='resnet34')` (24,436,369 parameters for RGB input and one
class, as smp counts them), on the default dataset.

python -m unetjax.main --config=configs/resnet_unet.py --workdir=runs/resnet_unet

ImageNet weights: download torchvision's ResNet-34 state_dict once, where
there is internet (https://download.pytorch.org/models/resnet34-b627a593.pth,
the file torchvision.models.ResNet34_Weights.IMAGENET1K_V1 names), then
train on RGB images with, for example,

  --config.dataset.name=kvasir_seg/256px \
  --config.dataset.manual_dir=../shared/data/kvasir_seg \
  --config.model.pretrained=/path/to/resnet34-b627a593.pth

Nothing downloads at run time; torch reads the file (pip install torch).
"""

from configs import default


def get_config():
  config = default.get_config()
  model = config.model
  model.name = 'resnet_unet'
  model.num_layers = 34  # the encoder: ResNet-18, 34 or 50
  model.base_filters = 64  # encoder stem and first stage (ImageNet weights: 64)
  model.depth = 5  # fixed: the encoder downsamples to 1/32
  model.decoder_channels = (256, 128, 64, 32, 16)  # deep to shallow, as smp
  model.dropout_rates = (0.0,) * 6  # smp's decoder has none (levels 0-4, deepest)
  model.upsample = 'nearest'  # smp: interpolate(scale_factor=2), no weights
  # A torchvision ResNet state_dict (.pth) for the encoder; '' = random init.
  model.pretrained = ''
  # Steps for which the encoder keeps the loaded weights while the decoder
  # learns (its gradients and updates are zeroed); 0 = train it from step 0.
  model.freeze_encoder_steps = 0
  return config
