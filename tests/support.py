"""The test market lives in the package, because the fuzzer builds its scenes on it too
(`protocols/fuzz/market.py`); the tests keep importing it from here."""

from protocols.fuzz.market import (  # noqa: F401 - re-exported for the tests
    ACTORS,
    APP_PRICE,
    AUTHORITY,
    CATEGORY,
    CHAIN_ID,
    DATASET_PRICE,
    POOL_PRICE,
    RLC,
    START_BALANCE,
    T_MS,
    Market,
    certificate,
    make_genesis,
    platform_key,
    total_supply,
)
