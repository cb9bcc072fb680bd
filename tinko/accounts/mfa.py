from allauth.mfa.adapter import DefaultMFAAdapter

from tinko import crypto


class MFAAdapter(DefaultMFAAdapter):
    """TOTP seeds and recovery-code seeds are encrypted at rest (allauth stores them in clear otherwise).

    A database dump alone then cannot mint second-factor codes.
    """

    def encrypt(self, text: str) -> str:
        return crypto.encrypt(text)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt(encrypted_text)
