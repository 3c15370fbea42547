"""``python -m bridge …``: the bridge without the wattstream CLI."""

from bridge.cli import bridge

if __name__ == "__main__":
    bridge()
