"""A plan as an ordinary config file (each value with its reason) and as the
--explain table."""

from typing import Any, Sequence

import ml_collections

from unetjax.plan.rules import Decision


def _flat(config: ml_collections.ConfigDict, prefix: str = '') -> dict[str, Any]:
  """Leaf paths -> values; a section is a leaf only where it has no fields."""
  flat = {}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict) and len(value):
      flat.update(_flat(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def carried(config: ml_collections.ConfigDict, base: ml_collections.ConfigDict,
            source: str) -> list[Decision]:
  """The fields of `config` that differ from `base` (configs/default.py):
  what the user's config says about its dataset and task. A section that
  `base` lacks (dataset.folder) is carried whole."""
  base_flat, base_sections = _flat(base), _sections(base)
  out, whole = [], set()
  for path, value in _flat(config).items():
    new_section = next((p for p in _section_chain(path)
                        if p not in base_sections), None)
    if new_section is not None:
      if new_section not in whole:
        whole.add(new_section)
        out.append(Decision(new_section, _get(config, new_section).to_dict(),
                            f'from {source}'))
    elif path not in base_flat or base_flat[path] != value:
      out.append(Decision(path, value, f'from {source}'))
  return out


def _section_chain(path: str) -> list[str]:
  parts = path.split('.')
  return ['.'.join(parts[:i]) for i in range(1, len(parts))]


def _sections(config: ml_collections.ConfigDict, prefix: str = '') -> set[str]:
  out = set()
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.add(prefix + key)
      out |= _sections(value, f'{prefix}{key}.')
  return out


def _get(config: ml_collections.ConfigDict, path: str) -> Any:
  for key in path.split('.'):
    config = config[key]
  return config


def merged(decisions: Sequence[Decision]) -> list[Decision]:
  """Later decisions about a field replace earlier ones (and take their
  place in the order)."""
  order: dict[str, Decision] = {}
  for d in decisions:
    order.pop(d.field, None)
    order[d.field] = d
  return list(order.values())


def apply(config: ml_collections.ConfigDict,
          decisions: Sequence[Decision]) -> ml_collections.ConfigDict:
  """A copy of `config` with every decision set."""
  out = ml_collections.ConfigDict(config.to_dict())
  for d in decisions:
    *parents, leaf = d.field.split('.')
    node = out
    for key in parents:
      node = node[key]
    node[leaf] = (ml_collections.ConfigDict(d.value) if isinstance(d.value, dict)
                  else d.value)
  return out


def _literal(value: Any) -> str:
  if isinstance(value, dict):
    items = ', '.join(f'{k!r}: {_literal(v)}' for k, v in value.items())
    return f'ml_collections.ConfigDict({{{items}}})'
  if isinstance(value, float):
    return repr(round(value, 6))
  if isinstance(value, list):
    return repr(tuple(value))
  return repr(value)


def config_source(decisions: Sequence[Decision], header: str) -> str:
  """The text of a config file that sets each decision on top of
  configs/default.py, its reason beside it."""
  lines = [f'"""{header}"""', '', 'import ml_collections', '',
           'from configs import default', '', '',
           'def get_config():', '  config = default.get_config()']
  for d in decisions:
    lines.append(f'  # {d.reason}')
    lines.append(f'  config.{d.field} = {_literal(d.value)}')
  lines += ['  return config', '']
  return '\n'.join(lines)


def table(decisions: Sequence[Decision]) -> str:
  """Field | value | why, one line each."""
  rows = [(d.field, _literal(d.value), d.reason) for d in decisions]
  wf = max(len(r[0]) for r in rows)
  wv = min(28, max(len(r[1]) for r in rows))
  return '\n'.join(f'{f:<{wf}}  {v:<{wv}}  {why}' for f, v, why in rows)
