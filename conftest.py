"""pytest at the repository root: doctests of sqltargets/torch.py need the torch extra."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["sqltargets/torch.py"]
