"""A worker backend that kills its process when a batch holds an image whose path contains 'crash'."""

import os

from backends.llava import LlavaBackend  # the harness's backends are the package `backends` in a worker


class CrashyBackend(LlavaBackend):
    """LlavaBackend that dies (exit code 3) on 'crash' images, like a segfault or an OOM kill would."""

    def score(self, sources):
        if any(os.path.basename(str(s)).startswith("crash") for s in sources):
            os._exit(3)
        return super().score(sources)
