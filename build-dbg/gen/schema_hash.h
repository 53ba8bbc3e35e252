/* Generated from schema/fleetrl.fbs by schema_hash_gen; do not edit. */
#define FRL_SCHEMA_HASH 0xc57041aedea92e26ULL
