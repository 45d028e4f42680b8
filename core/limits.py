"""Input limits, defined once: the column sizes of the models and the bounds of the API
schemas (``msgspec.Meta``) both come from here, so a value the API accepts always fits its
column and the OpenAPI document shows the same limits."""

from __future__ import annotations

from typing import Annotated

import msgspec

#: The largest value of a Postgres ``bigint`` / ``integer``.
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1

#: Money in minor units: what an amount field accepts (far below ``bigint``'s range, so
#: sums of many amounts never overflow either).
MAX_AMOUNT = 10**12

# column sizes (characters)
CODE_LEN = 32  # provider code, handler key, integration type
NAME_LEN = 200  # tenant, product names
PROVIDER_NAME_LEN = 100
CLUSTER_NAME_LEN = 64
CLUSTER_URL_LEN = 1000
SLUG_LEN = 40
URL_LEN = 500  # catalog URLs
CURRENCY_LEN = 3
STATUS_LEN = 16
ORDER_STATUS_LEN = 24
REASON_LEN = 500  # order status reasons, order line descriptions, notes
EMAIL_LEN = 254
COUPON_LEN = 64  # coupon and referral codes
#: Free text without a column of its own (JSONB values, secrets): a sane upper bound.
TEXT_LEN = 5000
KEY_LEN = 4096  # provider API keys and secrets
LIST_LEN = 100  # short lists (payment methods, features, currencies)

Amount = Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT)]
#: An e-mail address, as far as a form can tell (something@somewhere.tld).
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=EMAIL_LEN,
                                    pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
#: An ``integer`` column that only holds small non-negative counts or ranks.
SmallCount = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]
Currency = Annotated[str, msgspec.Meta(min_length=3, max_length=CURRENCY_LEN)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=CODE_LEN)]
Text = Annotated[str, msgspec.Meta(max_length=TEXT_LEN)]
Url = Annotated[str, msgspec.Meta(max_length=URL_LEN)]
ShortText = Annotated[str, msgspec.Meta(max_length=CODE_LEN)]
Reason = Annotated[str, msgspec.Meta(max_length=REASON_LEN)]
