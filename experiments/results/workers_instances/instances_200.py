"""experiments/instances.py cut to 200 steps (validation every 100)."""
import importlib.util, pathlib

_spec = importlib.util.spec_from_file_location(
    'instances_sweep', pathlib.Path.cwd() / 'experiments' / 'instances.py')
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)


def get_sweep():
  sweep = _module.get_sweep()
  sweep['fixed'] = dict(sweep['fixed'], **{'config.num_train_steps': 200})
  return sweep
