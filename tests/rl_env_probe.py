"""Run by ``.venv-rl``'s interpreter (verl 0.9.1 + vLLM 0.24.0), never imported by pytest's environment.

``python tests/rl_env_probe.py rollout LAUNCHES.json``: the preflight's ``rollout`` check
(``checks.check_rollout_startup``: verl's own rollout-server start-up) on each named launch's overrides, in one
process (verl and vLLM import once); prints ``{name: [problem, ...]}`` as JSON.

``python tests/rl_env_probe.py budget MAX_NEW_TOKENS PROMPT_TOKENS MODEL_DIR MAX_MODEL_LEN...``: vLLM 0.24.0's
own length checks on the chat request our reward sends to verl's reward-model pool (``router_client.chat_request``):
``ChatCompletionRequest.build_tok_params`` (the ``max_tokens`` against ``max_model_len``) and the prompt check
that follows tokenization (``TokenizeParams._token_len_check``), on a prompt of PROMPT_TOKENS tokens, for each
server length. Prints a JSON list: ``ok`` or the refusal vLLM answers with HTTP 400, per length.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace


def budget(max_model_len: int, max_new_tokens: int, prompt_tokens: int, tokenizer: object) -> str:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    from proxy_grm.proxy_contract import RewardItem
    from proxy_grm.reward.router_client import chat_request

    item = RewardItem(question="q", chosen="a", rejected="b", rubric="r", image="x.png", answer="1")
    request = ChatCompletionRequest.model_validate(chat_request(item, "data:image/png;base64,AA==", max_new_tokens))
    try:
        params = request.build_tok_params(SimpleNamespace(max_model_len=max_model_len))
        params._token_len_check(tokenizer, [0] * prompt_tokens)
    except Exception as error:  # noqa: BLE001  (VLLMValidationError: its server answers 400)
        return f"refused: {type(error).__name__}: {error}"
    return "ok"


def rollout(launches_file: str) -> str:
    from proxy_grm.launch import checks
    from proxy_grm.proxy_contract import DEFAULT_MAX_NEW_TOKENS

    problems = {}
    for name, overrides in json.loads(Path(launches_file).read_text()).items():
        config, _ = checks.verl_problems(overrides)
        max_new_tokens = (config.reward.custom_reward_function.get("reward_kwargs") or {}).get("max_new_tokens")
        found = checks.check_rollout_startup(config, int(max_new_tokens or DEFAULT_MAX_NEW_TOKENS))
        problems[name] = [str(problem) for problem in found]
    return json.dumps(problems)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "budget":
        from transformers import AutoTokenizer

        new_tokens, prompt, tokenizer = int(args[0]), int(args[1]), AutoTokenizer.from_pretrained(args[2])
        print(json.dumps([budget(int(length), new_tokens, prompt, tokenizer) for length in args[3:]]))
    else:
        assert command == "rollout", command
        print(rollout(args[0]))
