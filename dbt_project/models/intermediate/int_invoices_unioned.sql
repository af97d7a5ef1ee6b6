-- Every provider's staging invoices on the one column contract (staging/README.md).
{{ union_staging('invoices') }}
