"""Root pytest configuration: applies to tests/ and to the notebooks run by nbval."""

import os

# Notebooks and tests run in small mode unless the caller asks otherwise (LABKIT_SMALL=0).
# nbval starts each notebook's kernel from this process, so the kernel inherits the switch.
os.environ.setdefault("LABKIT_SMALL", "1")
# Matplotlib-free, display-free runs: plotly figures render to JSON only.
os.environ.setdefault("PLOTLY_RENDERER", "json")
