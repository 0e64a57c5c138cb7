"""TFDS dataset builders; importing this package registers them with tfds."""

from unetjax.data.builders import cvc_clinicdb
from unetjax.data.builders import drive
from unetjax.data.builders import image_class_folder
from unetjax.data.builders import image_folder
from unetjax.data.builders import isbi2012_em
from unetjax.data.builders import isic2018
from unetjax.data.builders import kvasir_seg
from unetjax.data.builders import synthetic_cells

# Builders of named datasets (their files in config.dataset.manual_dir).
BUILDERS = (synthetic_cells.SyntheticCells, isbi2012_em.Isbi2012Em,
            drive.Drive, kvasir_seg.KvasirSeg, cvc_clinicdb.CvcClinicDb,
            isic2018.Isic2018Task1)
# Builders of a folder of the user's own files: name -> (module with
# make_config(folder, **options) and BUILDER, what the folder holds).
FOLDER_BUILDERS = {
    image_folder.ImageFolder.name: (image_folder, 'images/ and masks/'),
    image_class_folder.ImageClassFolder.name: (
        image_class_folder, 'one folder of images per class'),
}
# Every config.dataset.name unetjax provides (any other registered TFDS
# dataset works too).
DATASETS = tuple(f'{b.name}/{c.name}' for b in BUILDERS
                 for c in b.BUILDER_CONFIGS) + tuple(FOLDER_BUILDERS)
