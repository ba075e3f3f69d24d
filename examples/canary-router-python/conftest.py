import sys
from pathlib import Path

# The SDK from this repository; a project of your own would `pip install` it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk-python"))
