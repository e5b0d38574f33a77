-- Whether the user proved they receive mail at their address (API.md "Email").
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
