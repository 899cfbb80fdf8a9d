"""Model backends that run either in-process or inside a worker process of another Python environment.

Every module here imports only the standard library, NumPy, PIL, torch and
transformers (never the rest of ``harness``), so ``worker.py`` can load them
in an environment pinned to old library versions (mPLUG-Owl2 on transformers
4.31). Siblings are imported relatively (``from . import hf_vlm``): this folder is a package both here
(``harness.plugins.lmm.backends``) and in a worker, which imports it as ``backends`` (see ``worker.py``).
"""
