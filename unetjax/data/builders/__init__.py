"""TFDS dataset builders; importing this package registers them with tfds."""

from unetjax.data.builders import cvc_clinicdb
from unetjax.data.builders import drive
from unetjax.data.builders import image_class_folder
from unetjax.data.builders import image_folder
from unetjax.data.builders import isbi2012_em
from unetjax.data.builders import isic2018
from unetjax.data.builders import kvasir_seg
from unetjax.data.builders import synthetic_cells

_BUILDERS = (synthetic_cells.SyntheticCells, isbi2012_em.Isbi2012Em,
             drive.Drive, kvasir_seg.KvasirSeg, cvc_clinicdb.CvcClinicDb,
             isic2018.Isic2018Task1)
DATASETS = tuple(f'{b.name}/{c.name}' for b in _BUILDERS
                 for c in b.BUILDER_CONFIGS) + (
                     image_folder.ImageFolder.name,
                     image_class_folder.ImageClassFolder.name)
