-- Where each municipality's issuer is reached (the endpoint of its [[remote_issuers]] entry,
-- or `in-process`), so that a start that routes it elsewhere is seen and written to the audit
-- log as MUNICIPALITY_ROUTED. Empty for rows written before this column existed: the next
-- start records their route.
ALTER TABLE municipalities ADD COLUMN issuer_endpoint TEXT NOT NULL DEFAULT '';
