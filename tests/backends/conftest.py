"""The Triton backend tests need torch and triton; without a GPU they run in Triton's
interpreter, which must be switched on before triton is first imported (so this file checks
that triton is installed without importing it)."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("triton") is None:
    pytest.skip("the Triton backend needs torch and triton", allow_module_level=True)

from einsumcc_triton.launch import use_interpreter

use_interpreter()
