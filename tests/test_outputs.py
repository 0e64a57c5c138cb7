"""unetjax.outputs: output folders never overwrite inputs or foreign files."""

import errno
import json
import os

import pytest

from unetjax import outputs
from unetjax.errors import UserInputError


def test_a_file_unetjax_did_not_write_is_never_claimed(tmp_path):
  (tmp_path / 'grid.png').write_bytes(b'user data')
  with pytest.raises(UserInputError, match=r'grid.png already exists and '
                     'unetjax did not write it'):
    outputs.claim(str(tmp_path), ['grid.png', 'other.png'])
  assert sorted(p.name for p in tmp_path.iterdir()) == ['grid.png']
  outputs.claim(str(tmp_path), ['new.png']).save(
      'new.png', lambda path: open(path, 'wb').write(b'ours'))
  outputs.claim(str(tmp_path), ['new.png'])  # ours: may be replaced
  (tmp_path / outputs.MANIFEST).write_text('{broken')  # trusts nothing then
  with pytest.raises(UserInputError, match='new.png already exists'):
    outputs.claim(str(tmp_path), ['new.png'])


def test_an_output_folder_may_not_be_or_hold_an_input(tmp_path):
  data = tmp_path / 'data'
  (data / 'images').mkdir(parents=True)
  with pytest.raises(UserInputError, match=r'--out=.*data holds the --images'):
    outputs.check_separate('out', str(data), {'images': str(data / 'images')})
  with pytest.raises(UserInputError, match=r'--out=.*images is the --images'):
    outputs.check_separate('out', str(data / 'images' / '.'),
                           {'images': str(data / 'images'), 'masks': None})
  outputs.check_separate('out', str(data / 'images' / 'predicted'),
                         {'images': str(data / 'images')})
  outputs.check_separate('out', str(tmp_path / 'data2'), {'images': str(data)})


def test_a_file_written_before_its_manifest_update_failed_is_still_ours(
    tmp_path, monkeypatch):
  """A full disk (or a kill) between writing a file and listing it as
  written: the re-run of the same command replaces it."""
  replace = os.replace

  def full_once_written(source, target):
    if target.endswith(outputs.MANIFEST) and (tmp_path / 'a.png').exists():
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return replace(source, target)
  monkeypatch.setattr(os, 'replace', full_once_written)
  with pytest.raises(OSError, match='No space left'):
    outputs.claim(str(tmp_path), ['a.png']).save(
        'a.png', lambda path: open(path, 'wb').write(b'first'))
  monkeypatch.setattr(os, 'replace', replace)
  assert (tmp_path / 'a.png').read_bytes() == b'first'
  outputs.claim(str(tmp_path), ['a.png']).save(  # the re-run
      'a.png', lambda path: open(path, 'wb').write(b'second'))
  assert (tmp_path / 'a.png').read_bytes() == b'second'
  manifest = json.loads((tmp_path / outputs.MANIFEST).read_text())
  assert manifest == {'files': ['a.png'], 'pending': []}


def test_a_file_whose_write_failed_is_not_listed_as_written(tmp_path):
  def full_disk(path):
    open(path, 'wb').write(b'part')
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  with pytest.raises(OSError):
    outputs.claim(str(tmp_path), ['a.png']).save('a.png', full_disk)
  assert not (tmp_path / 'a.png').exists()
  manifest = tmp_path / outputs.MANIFEST
  assert not manifest.exists() or json.loads(manifest.read_text())['files'] == []
