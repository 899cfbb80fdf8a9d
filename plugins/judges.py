"""LLM judges: any OpenAI-compatible endpoint, or a local transformers model.

Both decode greedily (temperature 0). Retries are made and counted as for the
``openai-api`` model (:mod:`harness.plugins.openai_endpoints`: 429, 5xx and
unreachable up to ``max_retries`` with backoff honouring ``Retry-After``, a timeout
once, a malformed reply twice); every attempt counts in the judge's usage. What
still fails raises :class:`JudgeError` with the status, the attempts and the
server's message, so the metric counts a failure instead of a score; a request the
server refuses as such (HTTP 400, 413, 422: the prompt too long, say) is marked
deterministic, and cached as a failure like an unusable model answer.

Configuration (arguments, else environment):

- ``model`` / ``HARNESS_JUDGE_MODEL``: the judge model name (required);
- ``base_url`` / ``HARNESS_JUDGE_BASE_URL`` (else ``OPENAI_BASE_URL``): the endpoint,
  e.g. ``http://127.0.0.1:8000/v1`` for a local vLLM server;
- the API key only from ``HARNESS_JUDGE_API_KEY`` (else ``OPENAI_API_KEY``); it is
  never stored in fingerprints, results, logs or error messages. A local endpoint
  without a key gets the placeholder ``"EMPTY"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from harness.interfaces import Judge, JudgeError
from harness.plugins.api_errors import api_error_message, status_of


class OpenAICompatibleJudge(Judge):
    """Chat-completions judge over HTTP (GPT-4o, Gemini/Claude through compatible endpoints, vLLM)."""

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        max_tokens: int = 64,
        **args: Any,
    ) -> None:
        model = model or os.environ.get("HARNESS_JUDGE_MODEL")
        base_url = base_url or os.environ.get("HARNESS_JUDGE_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        if not model:
            raise ValueError("the LLM judge needs a model: pass judge_args model=NAME or set HARNESS_JUDGE_MODEL")
        key = os.environ.get("HARNESS_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY")
        if not key and not base_url:
            raise ValueError(
                "the LLM judge needs HARNESS_JUDGE_API_KEY (or OPENAI_API_KEY) for the OpenAI API, "
                "or HARNESS_JUDGE_BASE_URL for a local OpenAI-compatible server"
            )
        super().__init__(model=model, base_url=base_url, max_tokens=max_tokens, **args)
        from openai import OpenAI

        from harness.plugins.openai_endpoints import EndpointPool

        self.model, self.max_tokens = model, int(max_tokens)
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.client = OpenAI(api_key=key or "EMPTY", base_url=base_url, timeout=self.timeout, max_retries=0)
        self.pool = EndpointPool([(base_url, self.client)], max_retries=self.max_retries)

    def fingerprint(self) -> dict[str, Any]:
        """Model, endpoint and decoding (no key)."""
        return {
            "class": "openai-compatible",
            "model": self.model,
            "base_url": self.args.get("base_url"),
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }

    def complete(self, prompt: str, system: str | None = None) -> str:
        """One chat completion at temperature 0 (every attempt counted in :attr:`usage`)."""
        from harness.plugins.openai_endpoints import CallFailed, MalformedReply

        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]

        def ask(client: Any) -> Any:
            response = client.chat.completions.create(
                model=self.model, messages=messages, temperature=0, max_tokens=self.max_tokens
            )
            choices = getattr(response, "choices", None)
            if not isinstance(choices, list) or not choices:
                raise MalformedReply("no choices in the reply")
            return response

        try:
            response, _, attempts = self.pool.call(ask)
        except CallFailed as exc:
            self.count(requests=exc.attempts)
            error = JudgeError(api_error_message(exc, "judge", self.timeout, exc.attempts))
            error.deterministic = status_of(exc) in DETERMINISTIC_STATUSES
            raise error from None
        self.count(requests=attempts)
        tokens = getattr(response, "usage", None)
        if tokens is not None:
            self.count(
                prompt_tokens=int(tokens.prompt_tokens or 0), completion_tokens=int(tokens.completion_tokens or 0)
            )
        content = getattr(response.choices[0].message, "content", None)
        if not isinstance(content, str) or not content.strip():
            raise JudgeError("empty judge response")
        return content


#: statuses that refuse the request itself (asking again would be refused again): the judge failure is cached
DETERMINISTIC_STATUSES = (400, 413, 422)


class TransformersJudge(Judge):
    """A local causal LM as judge (chat template when the tokenizer has one), greedy decoding.

    Many prompts at once (:meth:`complete_many`, what the judge metrics and the verdict fallback ask) go through
    transformers' continuous batching (``generate_batch``: a paged KV cache, requests joining and leaving the
    running batch as they finish) where it pays: ``batching=auto`` takes it on a CUDA device, one ``generate``
    per prompt on the CPU (where it is far slower: ``benchmarks/results/lmm-cpu-tiny.json``, 3.7 answers/s with
    continuous batching against 72 padded). ``batching=continuous`` or ``none`` decide it; ``paged_blocks``
    sizes the paged cache (default: transformers sizes it from free GPU memory); ``chunk`` prompts go in per call,
    each call's replies handed back before the next starts. The replies equal :meth:`complete`'s (tested).
    """

    BATCHING = ("auto", "continuous", "none")

    def __init__(
        self,
        path: str | None = None,
        max_new_tokens: int = 32,
        device: str = "cpu",
        batching: str = "auto",
        paged_blocks: int | None = None,
        chunk: int = 64,
        **args: Any,
    ) -> None:
        if not path:
            raise ValueError("the transformers judge needs judge_args path=LOCAL_MODEL_DIR")
        if batching not in self.BATCHING:
            raise ValueError(f"batching={batching!r}: one of {', '.join(self.BATCHING)}")
        super().__init__(path=path, max_new_tokens=max_new_tokens, device=device, **args)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer: Any = AutoTokenizer.from_pretrained(path)
        model: Any = AutoModelForCausalLM.from_pretrained(path)
        self.model: Any = model.to(device).eval()
        self.max_new_tokens, self.device = int(max_new_tokens), device
        available = hasattr(self.model, "generate_batch")
        if batching == "continuous" and not available:
            raise ValueError("batching=continuous: this transformers has no continuous batching (generate_batch)")
        on_gpu = str(device).startswith("cuda")
        self.batching = "continuous" if batching == "continuous" or (batching == "auto" and on_gpu and available) else (
            "none")  # fmt: skip
        self.paged_blocks, self.chunk = (int(paged_blocks) if paged_blocks else None), max(1, int(chunk))

    def _text(self, prompt: str, system: str | None) -> str:
        """The prompt as the model reads it: its chat template when it has one."""
        if getattr(self.tokenizer, "chat_template", None):
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}
            ]
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        return (system + "\n" if system else "") + prompt

    def complete(self, prompt: str, system: str | None = None) -> str:
        """Greedy continuation of the (templated) prompt."""
        import torch

        inputs = self.tokenizer(self._text(prompt, system), return_tensors="pt").to(self.device)
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        reply = str(self.tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
        if not reply.strip():
            raise JudgeError("empty judge response")
        return reply

    def complete_many(
        self, prompts: Sequence[str], system: str | None = None, concurrency: int = 1
    ) -> Iterator[tuple[int, str | JudgeError]]:
        """Continuous batching, ``chunk`` prompts per call (see the class); else :meth:`complete` per prompt."""
        if self.batching != "continuous":
            yield from super().complete_many(prompts, system, concurrency)
            return
        for start in range(0, len(prompts), self.chunk):
            chunk = prompts[start : start + self.chunk]
            yield from ((start + i, reply) for i, reply in enumerate(self._continuous(chunk, system)))

    def _continuous(self, prompts: Sequence[str], system: str | None) -> list[str | JudgeError]:
        """One ``generate_batch`` call: each prompt's reply in order (a request the batch failed: its error)."""
        import torch
        from transformers import GenerationConfig

        ids = [list(self.tokenizer(self._text(prompt, system))["input_ids"]) for prompt in prompts]
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        config = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False, eos_token_id=eos,
                                  pad_token_id=eos if pad is None else pad)  # fmt: skip
        paging: dict[str, Any] = {}
        if self.paged_blocks:
            from transformers.generation.configuration_utils import ContinuousBatchingConfig

            paging["continuous_batching_config"] = ContinuousBatchingConfig(num_blocks=self.paged_blocks)
        # not under inference_mode: the generation thread updates its paged cache in place, which transformers
        # refuses for inference tensors
        with torch.no_grad():
            outputs = self.model.generate_batch(ids, generation_config=config, progress_bar=False, **paging)
        waiting: dict[tuple[int, ...], list[int]] = {}  # each output finds its prompt by the prompt's token ids
        for position, row in enumerate(ids):
            waiting.setdefault(tuple(row), []).append(position)
        replies: list[str | JudgeError] = [JudgeError("continuous batching returned no output")] * len(prompts)
        for output in outputs.values():
            positions = waiting.get(tuple(output.prompt_ids or ()))
            if not positions:
                continue
            position = positions.pop(0)
            text = str(self.tokenizer.decode(output.generated_tokens, skip_special_tokens=True))
            if getattr(output, "error", None):
                replies[position] = JudgeError(f"continuous batching: {output.error}")
            elif not text.strip():
                replies[position] = JudgeError("empty judge response")
            else:
                replies[position] = text
        return replies
