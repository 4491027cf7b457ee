"""check_expert_stats.py STATS.json TOP_K [--dropless]: checks moe-run's
routing statistics against the run they describe (docs/ExpertStats.md):
every choice is routed or dropped, the imbalance is max / mean, and a
dropless run drops nothing. Prints one line per layer."""
import json
import sys

path, top_k = sys.argv[1], int(sys.argv[2])
dropless = "--dropless" in sys.argv
stats = json.load(open(path))
assert stats["format"] == "moe-mlir expert-stats", stats["format"]
assert stats["version"] == 1, stats["version"]
choices = stats["ranks"] * stats["tokens_per_rank"] * top_k * stats["steps"]
for layer in stats["layers"]:
    tokens = layer["tokens"]
    assert len(tokens) == layer["experts"], layer
    assert sum(tokens) == layer["routed"], layer
    assert layer["routed"] + layer["dropped"] == choices, (layer, choices)
    if dropless:
        assert layer["dropped"] == 0, layer
    mean = sum(tokens) / len(tokens)
    assert abs(layer["imbalance"] - max(tokens) / mean) < 1e-5, layer
    print(f"layer {layer['layer']}: {layer['experts']} experts, "
          f"{layer['routed'] + layer['dropped']} choices")
