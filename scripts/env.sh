# Source this (after scripts/bootstrap.sh): puts the repo's .venv/bin first on PATH, for
# cmake >= 3.26 (the bundled HDF5 build) and the tools there, and tells the tests where
# the two Pythons are.
_mursst_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$_mursst_root/.venv/bin:$PATH"
export MURSST_PYTHON="$_mursst_root/.venv/bin/python"
export MURSST_PYTHON_IC1="$_mursst_root/.venv-ic1/bin/python"
unset _mursst_root
