"""The built-in sandbox PSP (see provider.py and README.md). Importing the package registers it."""

from payments.sandbox.provider import SandboxProvider

__all__ = ["SandboxProvider"]
