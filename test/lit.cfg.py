# -*- Python -*-
import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%moe_src_root", config.moe_src_root))
config.substitutions.append(("%moe_obj_root", config.moe_obj_root))
config.substitutions.append(("%cxx", config.cxx))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.moe_tools_dir, config.moert_runner_dir, config.llvm_tools_dir]
tools = ["moe-opt", "moe-translate", "moe-run", "moert-run"]
llvm_config.add_tool_substitutions(tools, tool_dirs)

# Renders the SVG pictures (plan, routing) to PNG where it is installed.
import shutil

if shutil.which("rsvg-convert"):
    config.available_features.add("rsvg")

# The bench scripts' plots: matplotlib, which scripts/install-deps.sh installs.
import subprocess
import sys

if subprocess.run([sys.executable, "-c", "import matplotlib"],
                  capture_output=True).returncode == 0:
    config.available_features.add("matplotlib")
