"""A plan as an ordinary config file (each value with its reason) and as the
--explain table."""

import copy
from typing import Any, Sequence

import ml_collections

from unetjax import configuration
from unetjax.plan.rules import Decision


def _fields_and_sections(config: ml_collections.ConfigDict
                         ) -> tuple[dict[str, Any], dict[str, Any]]:
  """configuration.flatten split into fields (an empty section counts as
  one) and sections."""
  fields, sections = {}, {}
  for path, value in configuration.flatten(config).items():
    is_section = isinstance(value, ml_collections.ConfigDict)
    if is_section:
      sections[path] = value
    if not is_section or not len(value):
      fields[path] = value
  return fields, sections


def carried(config: ml_collections.ConfigDict, base: ml_collections.ConfigDict,
            source: str) -> list[Decision]:
  """The fields of `config` that differ from `base` (configs/default.py):
  what the user's config says about its dataset and task. A section that
  `base` lacks (dataset.folder) is carried whole."""
  base_fields, base_sections = _fields_and_sections(base)
  fields, sections = _fields_and_sections(config)
  out, whole = [], set()
  for path, value in fields.items():
    parts = path.split('.')
    new_section = next(('.'.join(parts[:i]) for i in range(1, len(parts))
                        if '.'.join(parts[:i]) not in base_sections), None)
    if new_section is not None:
      if new_section not in whole:
        whole.add(new_section)
        out.append(Decision(new_section, sections[new_section].to_dict(),
                            f'from {source}'))
    elif path not in base_fields or base_fields[path] != value:
      out.append(Decision(path, value, f'from {source}'))
  return out


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
  """A copy of `config` with every decision set; a deep copy keeps the
  config's field references and their types, as the rendered file would."""
  out = copy.deepcopy(config)
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
  # ml_collections only for a section set whole (a ConfigDict literal).
  imports = (['import ml_collections', '']
             if any(isinstance(d.value, dict) for d in decisions) else [])
  lines = [f'"""{header}"""', '', *imports, 'from configs import default', '', '',
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
