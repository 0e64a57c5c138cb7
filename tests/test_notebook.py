"""Runs experiments/colab_tpu.ipynb top to bottom on a tiny config (pmap
over the 8 fake CPU devices the kernel inherits from conftest)."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, 'experiments', 'colab_tpu.ipynb')


@pytest.mark.slow
def test_colab_notebook_runs_on_a_tiny_config(tfds_dir, tmp_path):
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  parameters = [c for c in notebook.cells
                if 'parameters' in c.metadata.get('tags', [])]
  assert len(parameters) == 1
  parameters[0].source = (f"REPO_URL = ''\nSTEPS = 2\nTINY = True\n"
                          f"DATA_DIR = {tfds_dir!r}\nWORKDIR = {str(tmp_path)!r}\n")
  NotebookClient(notebook, timeout=180, kernel_name='python3',
                 resources={'metadata': {'path': REPO}}).execute()
  outputs = [o for c in notebook.cells if c.cell_type == 'code'
             for o in c.outputs]
  text = ''.join(o.get('text', '') for o in outputs)
  assert 'unetjax in ' + REPO in text
  assert '8 x cpu' in text.lower()
  assert text.count('Best checkpoint: step 2 ') == 2
  markdown = [o['data']['text/markdown'] for o in outputs
              if 'text/markdown' in o.get('data', {})]
  assert '| unet | 2 |' in markdown[0] and '| resunet_pp | 2 |' in markdown[0]
  assert any('image/png' in o.get('data', {}) for o in outputs)
  assert os.path.exists(tmp_path / 'validation_curves.png')


def test_colab_install_keeps_the_runtimes_jax(tmp_path, monkeypatch):
  """Outside a checkout the install cell pins the installed jax and jaxlib
  (on Colab: the TPU build) for pip, which then cannot swap in a CPU one."""
  import importlib.metadata
  import importlib.util
  import subprocess
  import sys

  notebook = nbformat.read(NOTEBOOK, as_version=4)
  cell = next(c for c in notebook.cells
              if c.cell_type == 'code' and 'pip' in c.source)
  commands = []

  def run(command, **kwargs):
    commands.append(command)
    return subprocess.CompletedProcess(command, 0)
  monkeypatch.chdir(tmp_path)
  (tmp_path / 'unetjax-repo').mkdir()  # as if cloned
  monkeypatch.setattr(subprocess, 'run', run)
  monkeypatch.setattr(sys, 'path', list(sys.path))  # the cell adds the clone
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
  exec(cell.source, {'REPO_URL': 'unused', '__name__': 'notebook'})
  (pip,) = commands
  assert pip[pip.index('-c') + 1] == 'runtime-constraints.txt'
  pins = (tmp_path / 'unetjax-repo' / 'runtime-constraints.txt').read_text().split()
  for name in ('jax', 'jaxlib'):
    assert f'{name}=={importlib.metadata.version(name)}' in pins
