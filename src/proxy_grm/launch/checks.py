"""The preflight's checks: each returns the problems it found, one line each, with what to do.

A check never raises for a problem it is there to find; ``preflight`` turns any
other exception into a problem line too, so a user sees no traceback. Heavy
imports (torch, verl, pyarrow) happen inside the check that needs them.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

from proxy_grm.proxy_contract import CHECK_IMAGES_PATH, HEALTH_PATH, route_url

# The oldest Linux driver each CUDA major version runs on (NVIDIA's CUDA compatibility table, minor-version
# compatibility: any 13.x runtime on >= 580, any 12.x on >= 525).
MIN_DRIVER = {13: Version("580.65.06"), 12: Version("525.60.13"), 11: Version("450.80.02")}
CHECKPOINT_BYTES_PER_WEIGHT_BYTE = 7  # bf16 weights + fp32 master copy + two fp32 Adam moments: 14 B / 2 B


@dataclass(frozen=True)
class Problem:
    """One thing that would fail the launch, and how to fix it."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


def nvidia_driver() -> Version | None:
    """The NVIDIA driver version nvidia-smi reports, or None when there is no driver."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    versions = [line.strip() for line in out.splitlines() if line.strip()]
    return Version(versions[0]) if versions else None


def driver_problem(torch_cuda: str, driver: Version) -> str | None:
    """Why ``driver`` cannot run a torch built for CUDA ``torch_cuda``, or None.

    >>> print(driver_problem("13.0", Version("570.124.06")))  # doctest: +NORMALIZE_WHITESPACE
    driver 570.124.6 is older than 580.65.6, the oldest that runs CUDA 13.0 (torch was built for it):
    update the driver or install the torch build for your CUDA (docs/install.md, "GPU set-up")
    >>> driver_problem("12.8", Version("570.124.06")) is None
    True
    """
    major = int(torch_cuda.split(".")[0])
    need = MIN_DRIVER.get(major)
    if need is None or driver >= need:
        return None
    return (f"driver {driver} is older than {need}, the oldest that runs CUDA {torch_cuda} (torch was built for it): "
            'update the driver or install the torch build for your CUDA (docs/install.md, "GPU set-up")')


def check_cuda(gpus: int) -> list[Problem]:
    """CUDA devices visible, as many as the launch uses, and a driver new enough for the installed torch."""
    try:
        import torch
    except ImportError:
        return [Problem("cuda", 'torch is not installed in this environment (docs/install.md, "GPU set-up")')]
    driver = nvidia_driver()
    if torch.version.cuda is None:
        return [Problem("cuda", f"torch {torch.__version__} is a CPU build: "
                                'install the CUDA build (docs/install.md, "GPU set-up")')]
    if driver is None:
        return [Problem("cuda", "no NVIDIA driver found (nvidia-smi is not on PATH): run on a GPU node")]
    problems = []
    if (why := driver_problem(torch.version.cuda, driver)) is not None:
        problems.append(Problem("cuda", why))
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible < gpus:
        problems.append(Problem("cuda", f"{visible} CUDA device(s) visible, the launch uses {gpus}: check "
                                        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}"))
    return problems


def pinned_requirements(path: Path, environment: dict[str, str] | None = None) -> list[Requirement]:
    """The ``==`` pins of a requirement file that apply to ``environment`` (default: this interpreter).

    A direct wheel URL counts as a pin of its file name's version.
    """
    pins = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split(" #")[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise ValueError(f"{path}:{number}: {error}") from None
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        if requirement.url:
            wheel = requirement.url.rsplit("/", 1)[-1]
            requirement = Requirement(f"{requirement.name}=={wheel.split('-')[1].split('+')[0]}")
        if any(spec.operator == "==" for spec in requirement.specifier):
            pins.append(requirement)
    return pins


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_versions(requirement_file: Path) -> list[Problem]:
    """Every ``==`` pin of the requirement file is what is installed (a local build tag like +cu128 is fine)."""
    problems = []
    for requirement in pinned_requirements(requirement_file):
        want = next(spec.version for spec in requirement.specifier if spec.operator == "==")
        have = installed_version(requirement.name)
        if have is None:
            problems.append(Problem("versions", f"{requirement.name} is not installed, {requirement_file.name} pins "
                                                f"{want}: pip install -r {requirement_file.name}"))
        elif Version(have).public != Version(want).public:
            problems.append(Problem("versions", f"{requirement.name} {have} is installed, {requirement_file.name} pins "
                                                f"{want}: pip install -r {requirement_file.name}"))
    return problems


def check_flash_attn(why: str) -> list[Problem]:
    """flash-attn imports (it is a compiled extension: an ABI mismatch with torch shows here, not at model load)."""
    try:
        import flash_attn  # noqa: F401
    except Exception as error:  # ImportError, or an undefined-symbol OSError from a wheel built for another torch
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return [Problem("flash-attn", f"cannot import flash_attn ({first}); {why} needs it: install the wheel in "
                                      "requirements_rl.txt or `pip install flash-attn==2.8.3 --no-build-isolation`")]
    return []


def check_trainer_imports() -> list[Problem]:
    """The GRPO entry point's imports: verl's v1 trainer needs TransferQueue (verl[vllm] brings it, a bare verl not)."""
    try:
        import proxy_grm.launch.verl_trainer  # noqa: F401
    except Exception as error:  # ImportError, or whatever verl's import chain raises
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return [Problem("trainer", f"cannot import proxy_grm.launch.verl_trainer ({first}); verl's v1 trainer needs "
                                   "verl[vllm]==0.9.1 with its TransferQueue: pip install -r requirements_rl.txt")]
    return []


def check_logger(backends: list[str]) -> list[Problem]:
    """The logger's credentials exist before the models load (verl/utils/tracking.py and ms-swift read these)."""
    problems = []
    if "swanlab" in backends:
        mode = os.environ.get("SWANLAB_MODE", "cloud")
        saved = Path(os.environ.get("SWANLAB_SAVE_DIR", Path.home() / ".swanlab")) / ".netrc"
        if mode == "cloud" and not os.environ.get("SWANLAB_API_KEY") and not saved.is_file():
            problems.append(Problem("logger", "swanlab in cloud mode needs SWANLAB_API_KEY (or `swanlab login`); "
                                              "or set SWANLAB_MODE=local, or REPORT_TO=none"))
    if "wandb" in backends:
        mode = os.environ.get("WANDB_MODE", "online")
        netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
        logged_in = netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="replace")
        if mode not in {"offline", "disabled", "dryrun"} and not os.environ.get("WANDB_API_KEY") and not logged_in:
            problems.append(Problem("logger", "wandb needs WANDB_API_KEY (or `wandb login`); "
                                              "or set WANDB_MODE=offline, or REPORT_TO=none"))
    return problems


def _client(api_key: str | None, timeout_s: float) -> Any:
    import httpx

    return httpx.Client(timeout=timeout_s, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})


def probe(url: str, api_key: str | None, timeout_s: float = 5.0) -> tuple[str, bool] | None:
    """None when ``url`` answers 200, else why not and whether waiting may help (the reward's retry policy)."""
    from proxy_grm.reward.proxy_client import ProxyCallError, ProxyUnavailableError, request_json

    with _client(api_key, timeout_s) as client:
        try:
            request_json(client, url, max_retries=0)
        except ProxyCallError as error:
            return error.cause, isinstance(error, ProxyUnavailableError)
    return None


def check_proxies(urls: list[str], wait_s: float, api_key: str | None) -> list[Problem]:
    """Every proxy replica answers ``/health`` (with the API key); replicas still loading get ``wait_s``.

    What the reward would retry (no connection, 429, 5xx) is probed again until ``wait_s`` has passed;
    any other answer (401, 404) is final at once.
    """
    pending = {route_url(url, HEALTH_PATH): "not probed" for url in urls}
    final: dict[str, str] = {}
    deadline = time.monotonic() + wait_s
    while True:
        failed = {url: outcome for url in pending if (outcome := probe(url, api_key)) is not None}
        final.update({url: cause for url, (cause, transient) in failed.items() if not transient})
        pending = {url: cause for url, (cause, transient) in failed.items() if transient}
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    return [Problem("proxy", f"{url} is not healthy after {wait_s:g}s ({cause}): start it with "
                             "`python proxy/proxy.py --model-path ...` or fix PROXY_URLS")
            for url, cause in {**final, **pending}.items()]


def check_proxy_pool(reward_model: Any) -> list[Problem]:
    """verl's reward-model pool (``PROXY_MODE=pool``) as the proxy: a checkpoint here, and settings it can run.

    Why each setting (``scripts/rl/common.sh``, ``proxy_overrides``): colocated, verl scores without the
    rows' fields (``trainer/ppo/v1/trainer_base.py``, ``_compute_reward_colocate``); with
    ``free_cache_engine`` the standalone servers sleep and nothing wakes them
    (``experimental/reward_loop/reward_model.py``); without the cleared ``override_generation_config`` they
    decode with verl's ``repetition_penalty=1.0`` instead of the checkpoint's, unlike the proxy service.
    """
    from proxy_grm.proxy_service.cli import model_path_problem

    rollout = reward_model.rollout
    problems = []
    if (why := model_path_problem(Path(str(reward_model.model_path)), "reward.reward_model.model_path")) is not None:
        problems.append(f"{why} (PROXY_MODEL_PATH: the Proxy-SFT checkpoint)")
    if not reward_model.enable_resource_pool:
        problems.append("reward.reward_model.enable_resource_pool=False (colocated): verl 0.9.1 then scores with "
                        "prompts and responses only, so the reward gets no pair; keep the standalone pool")
    elif rollout.free_cache_engine:
        problems.append("reward.reward_model.rollout.free_cache_engine=True: the standalone servers would sleep "
                        "at start-up and never wake; set it False")
    if (rollout.get("engine_kwargs") or {}).get("vllm", {}).get("override_generation_config") != {}:
        problems.append("reward.reward_model.rollout.engine_kwargs.vllm.override_generation_config is not {}: "
                        "the pool would decode with verl's overrides, not the checkpoint's generation config")
    return [Problem("proxy", problem) for problem in problems]


def rollout_servers(config: Any) -> list[tuple[str, Any, Any]]:
    """Each kind of vLLM server verl starts for ``config``: (config key, rollout config, model config).

    The actor's rollout servers get ``actor_rollout_ref.model`` (``workers/rollout/llm_server.py``); the reward
    model's pool gets ``HFModelConfig(path=reward.reward_model.model_path)``
    (``experimental/reward_loop/reward_model.py``), given here as the fields it is built from.
    """
    servers = [("actor_rollout_ref.rollout", config.actor_rollout_ref.rollout, config.actor_rollout_ref.model)]
    reward_model = config.reward.reward_model
    if reward_model.enable:
        servers.append(("reward.reward_model.rollout", reward_model.rollout, {"path": str(reward_model.model_path)}))
    return servers


def replay_rollout_startup(rollout: Any, model: Any) -> Any:
    """verl's own start-up steps of one vLLM rollout server on these configs; the server object after them
    (``.config``: the ``RolloutConfig`` it would serve with; ``.model_config``: its ``HFModelConfig``).

    ``vLLMHttpServer.__init__`` (``workers/rollout/vllm_rollout/vllm_async_server.py``) turns the rollout config
    into verl's frozen ``RolloutConfig`` and the model config into ``HFModelConfig`` (``_init_config``,
    ``_init_model_config``) and then adjusts and checks them (``_validate_configs``), before it starts Ray work
    or vLLM. The replay runs exactly those three methods, verl's code, on a server object that skips the rest.
    """
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.rollout.vllm_rollout.vllm_async_server import vLLMHttpServer

    server = object.__new__(vLLMHttpServer)
    server.config = server._init_config(omega_conf_to_dataclass(rollout))  # as RolloutReplica hands it over
    server.model_config = server._init_model_config(model)
    server._validate_configs()
    return server


def check_rollout_startup(config: Any, proxy_max_new_tokens: int) -> list[Problem]:
    """Every vLLM server verl would start passes verl's own start-up steps (``replay_rollout_startup``), and
    verl's reward-model pool, if any, holds the longest proxy request (``check_pool_length``).

    Composing the config and building its dataclasses do not run those steps: a frozen field that verl assigns
    at start-up (``max_num_batched_tokens`` with chunked prefill off) killed every server only once they started.
    """
    try:
        import vllm  # noqa: F401
    except ImportError as error:
        return [Problem("rollout", f"cannot replay verl's rollout start-up: vLLM does not import here ({error}); "
                                   "pip install -r requirements_rl.txt")]
    problems = []
    for key, rollout, model in rollout_servers(config):
        if rollout.name != "vllm":
            continue
        try:
            served = replay_rollout_startup(rollout, model)
        except Exception as error:  # noqa: BLE001  (whatever verl raises is what the servers would die of)
            problems.append(Problem("rollout", f"verl's vLLM server start-up rejects {key}: "
                                               f"{type(error).__name__}: {error}"))
            continue
        if key.startswith("reward."):
            problems += check_pool_length(config, served.model_config.get_processor(), served.config.max_model_len,
                                          proxy_max_new_tokens)
    return problems


CHAT_TURN_TOKENS = 16  # the chat template's role markers around one user turn (Qwen2.5-VL: 5 with the reply's)


def proxy_request_tokens(config: Any, tokenizer: Any, max_new_tokens: int) -> int:
    """The most tokens a proxy request to verl's pool can ask for: its longest prompt plus ``max_new_tokens``.

    The proxy prompt holds the GRM prompt's pair and image (at most ``data.max_prompt_length`` tokens: verl
    filters longer prompts) and the rollout's rubric (at most ``data.max_response_length``), in the proxy's
    template instead of the GRM's: bounded by both lengths plus the template's own tokens.
    """
    from proxy_grm.prompts import proxy_prompt

    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor holds its tokenizer
    template_tokens = len(tokenizer.encode(proxy_prompt("", "", "", ""))) + CHAT_TURN_TOKENS
    return (int(config.data.max_prompt_length) + int(config.data.max_response_length) + template_tokens
            + max_new_tokens)


def check_pool_length(config: Any, tokenizer: Any, max_model_len: int, max_new_tokens: int) -> list[Problem]:
    """verl's pool holds the longest proxy request; else vLLM answers 400 and every reward call fails."""
    need = proxy_request_tokens(config, tokenizer, max_new_tokens)
    if need <= max_model_len:
        return []
    return [Problem("rollout", f"verl's reward-model servers hold {max_model_len} tokens (reward.reward_model.rollout."
                             f"max_model_len) but a proxy request may need {need}: the longest prompt "
                             "(data.max_prompt_length + data.max_response_length + the proxy template) plus "
                             f"max_new_tokens={max_new_tokens}; vLLM refuses such a request (HTTP 400). Raise "
                             "max_model_len (unset: the model's max_position_embeddings) or lower "
                             "reward_kwargs.max_new_tokens")]


def _open_here(ref: Any) -> str | None:
    """Why an image entry of a training row does not open on this node, or None."""
    from proxy_grm.images import ImageLoadError, load_image

    if isinstance(ref, dict):
        if ref.get("bytes"):
            return None
        ref = ref.get("image") or ref.get("path")
    try:
        load_image(str(ref))
    except ImageLoadError as error:
        return str(error)
    return None


def sample_rows(files: list[Path], sample: int) -> list[dict[str, Any]]:
    """The first ``sample`` rows of a set of training files (verl parquet, ms-swift JSONL)."""
    from proxy_grm.datafiles import iter_rows

    rows = (row for path in files for row, _ in iter_rows(path, batch_rows=sample))
    return list(itertools.islice(rows, sample))


def check_images(files: list[Path], proxy_urls: list[str], api_key: str | None, sample: int = 16) -> list[Problem]:
    """A sample of the training rows' images opens here, and the proxy can read the paths it will be sent."""
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        return [Problem("images", f"training file not found: {', '.join(missing)}")]
    rows = sample_rows(files, sample)
    local = [(ref, why) for row in rows for ref in row.get("images") or [] if (why := _open_here(ref))]
    problems = [Problem("images", f"{len(local)} of the sampled rows' images do not open on this node, "
                                  f"e.g. {local[0][1]}")] if local else []
    proxy_refs = sorted({str(row["extra_info"]["image"]) for row in rows
                         if isinstance(row.get("extra_info"), dict) and row["extra_info"].get("image")})
    from proxy_grm.reward.proxy_client import ProxyCallError, request_json

    for url in proxy_urls if proxy_refs else []:
        check_url = route_url(url, CHECK_IMAGES_PATH)
        try:
            with _client(api_key, timeout_s=10.0) as client:
                unreadable = request_json(client, check_url, {"images": proxy_refs}, max_retries=2)["unreadable"]
        except (ProxyCallError, KeyError, TypeError) as error:
            problems.append(Problem("images", f"{check_url} did not answer ({getattr(error, 'cause', error)})"))
            continue
        if unreadable:
            problems.append(Problem("images", f"the proxy at {url} cannot read {len(unreadable)} of {len(proxy_refs)} "
                                              f"sampled image paths, e.g. {unreadable[0]['reason']}: it reads "
                                              "extra_info.image on its own node, so give it the same file system "
                                              "(or --image-root)"))
    return problems


def weights_bytes(model_path: str) -> int | None:
    """The size of a local checkpoint's weight files, None for a hub id."""
    folder = Path(model_path)
    if not folder.is_dir():
        return None
    return sum(f.stat().st_size for f in folder.iterdir() if f.suffix in {".safetensors", ".bin"}) or None


def check_disk(save_dir: Path, model_path: str, min_free_gb: float = 50.0) -> list[Problem]:
    """Free space where checkpoints go: one checkpoint with optimizer state (about 7x the bf16 weights)."""
    existing = save_dir.absolute()
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    weights = weights_bytes(model_path)
    need = weights * CHECKPOINT_BYTES_PER_WEIGHT_BYTE if weights else int(min_free_gb * 2**30)
    if free >= need:
        return []
    basis = (f"one checkpoint with optimizer state is about {CHECKPOINT_BYTES_PER_WEIGHT_BYTE}x the "
             f"{weights / 2**30:.1f} GiB of weights" if weights else f"want at least {min_free_gb:g} GiB")
    return [Problem("disk", f"{free / 2**30:.1f} GiB free under {existing}, {basis}: free space or move the save dir")]


def check_stray_engines(proxy_urls: Sequence[str] = ()) -> list[Problem]:
    """vLLM engine processes left by an earlier run hold GPU memory the next launch needs.

    The engines of a proxy this launch uses on this machine (the one-GPU recipe, ``scripts/grpo_smoke.sh``) are
    not strays: they belong to the process listening on the proxy's port.
    """
    from proxy_grm.supervise import stray_engines

    serving = serving_processes(proxy_urls)
    problems = []
    for engine in stray_engines():
        if serving & engine_owners(engine.pid):
            continue
        memory = f"{engine.rss_mib or 0:.0f} MiB resident" + (
            "" if engine.gpu_mib is None else f", {engine.gpu_mib:.0f} MiB GPU")
        problems.append(Problem("engines", f"stray vLLM process {engine.pid} {engine.name} ({memory}), left by a "
                                           f"killed run: `kill -9 {engine.pid}`"))
    return problems


def verl_problems(overrides: list[str]) -> tuple[Any, list[Problem]]:
    """verl's trainer config composed from the launcher's overrides, and what verl's own validation rejects.

    Runs ``verl.utils.config.validate_config``, the check verl's ``main_ppo`` runs before starting Ray
    (batch sizes divisible by the GPU count, micro/mini batch rules), so a bad size fails here in seconds.
    """
    import verl
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    try:  # verl prints a success line and warns that GRPO has no critic: neither is news here
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            validate_config(config=config, use_reference_policy=need_reference_policy(config),
                            use_critic=need_critic(config))
    except (AssertionError, ValueError) as error:
        gpus = config.trainer.n_gpus_per_node * config.trainer.nnodes
        return config, [Problem("batch", f"verl rejects the sizes for {gpus} GPU(s): {error}")]
    return config, []


def split_files(value: Any) -> list[Path]:
    """verl's ``data.train_files`` (a path, a list, or a Hydra list string) as paths.

    >>> split_files("[a.parquet, b.parquet]")
    [PosixPath('a.parquet'), PosixPath('b.parquet')]
    """
    if isinstance(value, str):
        value = [part for part in re.split(r"[\[\],]", value) if part.strip()]
    return [Path(str(part).strip()) for part in value]


LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def serving_processes(urls: Sequence[str]) -> set[int]:
    """The pids listening on the ports of the URLs that name this machine."""
    from urllib.parse import urlsplit

    import psutil

    ports = {urlsplit(url).port for url in urls if urlsplit(url).hostname in LOCAL_HOSTS}
    if not ports:
        return set()
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:  # macOS without root; Linux lists the user's own sockets
        return set()
    return {conn.pid for conn in connections
            if conn.pid and conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in ports}


def engine_owners(pid: int) -> set[int]:
    """The pids of a process's ancestors."""
    import psutil

    try:
        return {parent.pid for parent in psutil.Process(pid).parents()}
    except psutil.Error:
        return set()


def proxies_on_this_node(urls: list[str]) -> bool:
    """Every proxy URL names this machine (so, with one GPU visible, the proxy shares the trainer's GPU).

    >>> proxies_on_this_node(["http://127.0.0.1:8000", "http://localhost:8001/"]), proxies_on_this_node([])
    (True, False)
    >>> proxies_on_this_node(["http://127.0.0.1:8000", "http://10.0.0.7:8000"])
    False
    """
    from urllib.parse import urlsplit

    return bool(urls) and all(urlsplit(url).hostname in LOCAL_HOSTS for url in urls)


def gpu_memory_gib() -> float | None:
    """Total memory of CUDA device 0 in GiB, or None without a GPU."""
    try:
        import torch
    except ImportError:
        return None
    try:
        return torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else None
    except Exception:  # a driver that cannot start CUDA: the cuda check names it
        return None


def proxy_model_from_health(url: str, api_key: str | None) -> str | None:
    """The checkpoint a running proxy service loaded (its ``/health`` ``model``), or None."""
    from proxy_grm.reward.proxy_client import ProxyCallError, request_json

    try:
        with _client(api_key, timeout_s=5.0) as client:
            health = request_json(client, route_url(url, HEALTH_PATH), max_retries=0)
        return str(health["model"])
    except (ProxyCallError, KeyError, TypeError):  # not up yet, or not our service: the proxy check says why
        return None


def check_memory_plan(config: Any, proxy_model: str | None, gpu_gib: float,
                      proxy_utilization: float | None = None) -> list[Problem]:
    """Policy and proxy on one GPU (``proxy_grm.launch.memory_plan``): the estimated peak fits ``gpu_gib``.

    ``proxy_utilization`` is the proxy's ``--gpu-memory-utilization`` (``PROXY_GPU_MEMORY_UTILIZATION``); None
    assumes the smallest share that holds the proxy, so a plan that fails then fails with any share.
    """
    from proxy_grm.launch.memory_plan import layout_from_verl, load_shape, plan

    if proxy_model is None:
        return [Problem("memory", "the proxy shares this GPU but its checkpoint is unknown: set PROXY_MODEL_PATH "
                                  "(or start the proxy first, its /health names it)")]
    try:
        policy, proxy = load_shape(str(config.actor_rollout_ref.model.path)), load_shape(proxy_model)
    except ValueError as error:
        return [Problem("memory", f"cannot plan the GPU's memory: {error}")]
    result = plan(policy, proxy, layout_from_verl(config, gpu_gib, proxy_utilization))
    if result.fits:
        return []
    shares = (f"rollout gpu_memory_utilization {result.layout.rollout_utilization:g}, proxy "
              f"{result.layout.proxy_utilization:g}")
    return [Problem("memory", f"{result.verdict()} ({shares}; estimate: python -m proxy_grm.launch.memory_plan "
                              "shows the table; LORA_RANK, ACTOR_OFFLOAD or a smaller proxy may fit)")]
