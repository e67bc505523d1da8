-- Secrets wrapped at rest (tend_identity.secret_wrapping): wrapped_by is the id of the key-encryption key that wrapped
-- the value with AES-256-GCM (12-byte nonce, ciphertext, 16-byte tag), NULL while it is stored unwrapped. Identity
-- wraps existing rows at start-up once a key-encryption key is configured.
ALTER TABLE signing_keys ADD COLUMN wrapped_by text CHECK (wrapped_by ~ '^[0-9a-f]{16}$');
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_private_key_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_private_key_length
    CHECK (length(private_key) = CASE WHEN wrapped_by IS NULL THEN 32 ELSE 12 + 32 + 16 END);

ALTER TABLE pseudonym_keys ADD COLUMN wrapped_by text CHECK (wrapped_by ~ '^[0-9a-f]{16}$');
ALTER TABLE pseudonym_keys DROP CONSTRAINT pseudonym_keys_secret_check;
ALTER TABLE pseudonym_keys ADD CONSTRAINT pseudonym_keys_secret_length
    CHECK (length(secret) >= CASE WHEN wrapped_by IS NULL THEN 32 ELSE 12 + 32 + 16 END);
