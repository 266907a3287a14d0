-- A rendered document stays `pending` until the gateway has recorded its issuance (Confirm),
-- so that documents signed for an issuance the gateway never recorded (the gateway stopped
-- between this render and its own commit) can be found and voided by the gateway's
-- reconciliation (ListPending, VoidPending). Status: pending, issued, voided.
CREATE INDEX issued_documents_pending ON issued_documents (status, issued_at);
