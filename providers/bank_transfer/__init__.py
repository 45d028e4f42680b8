"""Bank transfer: bank details + a unique transfer reference, confirmed by a bank feed."""

from providers.bank_transfer.provider import (
    BankTransferProvider,
    find_reference,
    transfer_reference,
)

__all__ = ["BankTransferProvider", "find_reference", "transfer_reference"]
