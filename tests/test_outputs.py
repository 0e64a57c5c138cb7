"""unetjax.outputs: output folders never overwrite inputs or foreign files."""

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
