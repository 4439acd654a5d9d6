"""Shared test setup: eosdsl always runs with 64-bit types, so the tests do too.

``eosdsl.engine.run.execute`` enables ``jax_enable_x64`` itself; tests that call the optimizer and
schedule functions directly need it before they build their first array.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)
