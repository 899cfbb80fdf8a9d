"""LLM judges: any OpenAI-compatible endpoint, or a local transformers model.

Both decode greedily (temperature 0). Retries with exponential backoff on 429,
5xx, timeouts and connection errors are the ``openai`` client's own
(``max_retries``, honouring ``Retry-After``); what still fails raises
:class:`JudgeError`, so the metric counts a failure instead of a score.

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
from typing import Any

from harness.interfaces import Judge, JudgeError
from harness.plugins.api_errors import api_error_message


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

        self.model, self.max_tokens = model, int(max_tokens)
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.client = OpenAI(
            api_key=key or "EMPTY", base_url=base_url, timeout=self.timeout, max_retries=self.max_retries
        )

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
        """One chat completion at temperature 0."""
        import openai

        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        try:
            self.count(requests=1)  # one call (the client's own retries of a failed call are not counted apart)
            response = self.client.chat.completions.create(
                model=self.model, messages=messages, temperature=0, max_tokens=self.max_tokens
            )
            tokens = getattr(response, "usage", None)
            if tokens is not None:
                self.count(
                    prompt_tokens=int(tokens.prompt_tokens or 0), completion_tokens=int(tokens.completion_tokens or 0)
                )
            content = response.choices[0].message.content
        except (openai.APIError, ValueError, AttributeError, IndexError, TypeError) as exc:
            raise JudgeError(api_error_message(exc, "judge", self.timeout, self.max_retries)) from None
        if not isinstance(content, str) or not content.strip():
            raise JudgeError("empty judge response")
        return content


class TransformersJudge(Judge):
    """A local causal LM as judge (chat template when the tokenizer has one), greedy decoding."""

    def __init__(self, path: str | None = None, max_new_tokens: int = 32, device: str = "cpu", **args: Any) -> None:
        if not path:
            raise ValueError("the transformers judge needs judge_args path=LOCAL_MODEL_DIR")
        super().__init__(path=path, max_new_tokens=max_new_tokens, device=device, **args)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).to(device).eval()
        self.max_new_tokens, self.device = int(max_new_tokens), device

    def complete(self, prompt: str, system: str | None = None) -> str:
        """Greedy continuation of the (templated) prompt."""
        import torch

        if getattr(self.tokenizer, "chat_template", None):
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}
            ]
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = (system + "\n" if system else "") + prompt
        inputs = self.tokenizer(text, return_tensors="pt").to(self.device)
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        reply = self.tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        if not reply.strip():
            raise JudgeError("empty judge response")
        return reply
