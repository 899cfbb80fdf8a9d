"""The test kit: stand-ins for what the harness talks to, shipped for plugin authors, tests and benchmarks.

- :mod:`harness.testkit.standin_engine`: an OpenAI-compatible server on the CPU. :class:`StandinEngine` has
  vLLM's HTTP surface (``/tokenize``, ``allowed_token_ids``, log-probabilities from known logits, a latency and a
  capacity: ``python -m harness.testkit.standin_engine`` is a command the ``launch=N`` launcher can start);
  :class:`ScriptedEngine` is OpenAI's own API with scripted replies. Both count every request that reached them
  and inject faults (statuses, bodies that are not JSON, no choices, no log-probabilities, slow answers).
- :mod:`harness.testkit.components`: the ``noop`` model (a pseudo-score from the sample id) and ``ListTask`` (a
  task from a JSON-lines file), to check a new task or model end to end.

The core never imports this package (``tests/test_import_graph.py`` holds it to that).
"""
