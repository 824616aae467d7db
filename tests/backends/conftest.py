"""The Triton backend tests need torch and triton; without a GPU they run in Triton's
interpreter, whose library functions must be decorated when triton is first imported (so
this file checks that triton is installed without importing it, then lets the backend import
it: the backend selects the interpreter through triton's knobs, never the environment)."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("triton") is None:
    pytest.skip("the Triton backend needs torch and triton", allow_module_level=True)

from einsumcc_triton.launch import use_interpreter

use_interpreter()
