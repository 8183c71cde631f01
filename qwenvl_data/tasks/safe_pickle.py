"""Load the RefCOCO `refs(*).p` pickles without letting a crafted file run code.

A pickle names callables by `module.name` (GLOBAL / STACK_GLOBAL) and calls them (REDUCE, BUILD,
INST, OBJ). The refs files hold only lists, dicts, strings and numbers, which pickle builds with its
own opcodes and no lookup at all; so `find_class` admits nothing but the two builtin container types
Python 2 wrote by name, and every other global (os.system, builtins.eval, ...) is refused.
"""

from __future__ import annotations

import io
import pickle

from ..errors import BadInput

_ALLOWED = {("builtins", "set"), ("builtins", "frozenset"), ("__builtin__", "set"), ("__builtin__", "frozenset")}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return {"set": set, "frozenset": frozenset}[name]
        raise pickle.UnpicklingError(f"global '{module}.{name}' is forbidden")


def safe_load(data: bytes, origin: str = "<bytes>"):
    """Unpickle builtin containers and scalars only; BadInput for anything else or a broken file."""
    try:
        # latin1 turns Python 2 byte strings into str, as the refer toolkit's own loader does
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise BadInput(f"{origin}: refused unsafe or broken pickle ({e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise BadInput(f"{origin}: not a readable pickle ({type(e).__name__}: {e})") from None
