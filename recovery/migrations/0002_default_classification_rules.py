"""Tinko's default decline-classification rules (rows without an organization).

The rows are derived from the shared decline-code reference (Stripe decline and
error codes, Stripe local-payment-method codes, Razorpay reasons, Visa raw
response codes, Mastercard Merchant Advice Codes and the free-text fallback).
tests/fixtures/decline_codes.csv holds the same reference rows and
tests/recovery/test_classifier.py checks this list against it.

The data lives in this file on purpose: a migration must not import app code
that can change later. Staff edit the rows in the admin afterwards; the reverse
removes only the default rows this migration shipped, never an organization's
own rules.
"""

from django.db import migrations

# How the classifier acts on each category unless a rule says otherwise.
ACTIONS = {
    "insufficient_funds": "auto_retry",
    "card_declined": "auto_retry",
    "processing_error": "auto_retry",
    "network_error": "auto_retry",
    "authentication_required": "customer_action",
    "expired_card": "customer_action",
    "invalid_card": "customer_action",
    "fraud_or_stolen": "stop",
    "do_not_retry": "stop",
    "unknown": "stop",
}

CODE_PRIORITY = 100

# (provider, field, value, category, min_delay_seconds, network_stop, description)
# provider "" = any provider (card-network codes). Stripe rows also serve the
# sandbox PSP, which speaks Stripe's vocabulary.
CODE_RULES = [
    # stripe decline_code
    ("stripe", "decline_code", "authentication_required", "authentication_required", 0, False, "Issuer wants cardholder authentication (e.g. 3D Secure) before it will approve"),
    ("stripe", "decline_code", "authentication_not_handled", "authentication_required", 0, False, "Follow-on to authentication_required: the payment was re-sent without the required authentication, so the issuer refused again"),
    ("stripe", "decline_code", "approve_with_id", "card_declined", 0, False, "Issuer could not authorise the payment"),
    ("stripe", "decline_code", "call_issuer", "card_declined", 0, False, "Declined; issuer gave no reason"),
    ("stripe", "decline_code", "card_not_supported", "do_not_retry", 0, False, "The card can't be used for this kind of purchase"),
    ("stripe", "decline_code", "card_velocity_exceeded", "insufficient_funds", 0, False, "Card balance, credit limit or per-transaction amount limit reached"),
    ("stripe", "decline_code", "currency_not_supported", "do_not_retry", 0, False, "The card can't be charged in this currency"),
    ("stripe", "decline_code", "do_not_honor", "card_declined", 0, False, "Declined; issuer gave no reason"),
    ("stripe", "decline_code", "do_not_try_again", "do_not_retry", 0, False, "Deprecated decline code (guidance now carried by advice_code): declined, no reason given"),
    ("stripe", "decline_code", "duplicate_transaction", "do_not_retry", 0, False, "A payment with the same amount and card details was sent moments earlier"),
    ("stripe", "decline_code", "expired_card", "expired_card", 0, False, "The card is past its expiry date"),
    ("stripe", "decline_code", "fraudulent", "fraud_or_stolen", 0, False, "Stripe suspects fraud and blocked the payment"),
    ("stripe", "decline_code", "generic_decline", "card_declined", 0, False, "Declined for an undisclosed reason, or blocked by Stripe Radar / Adaptive Acceptance"),
    ("stripe", "decline_code", "incorrect_address", "invalid_card", 0, False, "The address the customer gave doesn't match"),
    ("stripe", "decline_code", "incorrect_cvc", "invalid_card", 0, False, "The security code (CVC) is wrong"),
    ("stripe", "decline_code", "incorrect_number", "invalid_card", 0, False, "The card number is wrong"),
    ("stripe", "decline_code", "incorrect_pin", "invalid_card", 0, False, "Wrong PIN; only occurs for card-reader (in-person) payments"),
    ("stripe", "decline_code", "incorrect_zip", "invalid_card", 0, False, "The billing postal code is wrong"),
    ("stripe", "decline_code", "insufficient_funds", "insufficient_funds", 0, False, "Not enough money/credit on the card for this amount"),
    ("stripe", "decline_code", "invalid_account", "invalid_card", 0, False, "The card, or the account behind it, is not valid"),
    ("stripe", "decline_code", "invalid_amount", "do_not_retry", 0, False, "Amount is invalid or above what the issuer allows"),
    ("stripe", "decline_code", "invalid_cvc", "invalid_card", 0, False, "The security code (CVC) is wrong"),
    ("stripe", "decline_code", "invalid_expiry_month", "invalid_card", 0, False, "Expiry month is invalid"),
    ("stripe", "decline_code", "invalid_expiry_year", "invalid_card", 0, False, "Expiry year is invalid"),
    ("stripe", "decline_code", "invalid_number", "invalid_card", 0, False, "The card number is wrong"),
    ("stripe", "decline_code", "invalid_pin", "invalid_card", 0, False, "Wrong PIN"),
    ("stripe", "decline_code", "issuer_not_available", "network_error", 0, False, "Issuer could not be reached, so nothing was authorised"),
    ("stripe", "decline_code", "lost_card", "fraud_or_stolen", 0, False, "Card has been reported lost"),
    ("stripe", "decline_code", "merchant_blacklist", "fraud_or_stolen", 0, False, "Payment matched an entry on the merchant's own Stripe block list"),
    ("stripe", "decline_code", "new_account_information_available", "expired_card", 0, False, "The card or its account is no longer valid; the issuer has newer account details"),
    ("stripe", "decline_code", "no_action_taken", "card_declined", 0, False, "Declined; issuer gave no reason"),
    ("stripe", "decline_code", "not_permitted", "do_not_retry", 0, False, "The payment is not permitted"),
    ("stripe", "decline_code", "offline_pin_required", "authentication_required", 0, False, "Card requires PIN entry (in-person payments)"),
    ("stripe", "decline_code", "online_or_offline_pin_required", "authentication_required", 0, False, "Card requires PIN entry"),
    ("stripe", "decline_code", "pickup_card", "fraud_or_stolen", 0, False, "Card can't be used for this payment; it may have been reported lost or stolen"),
    ("stripe", "decline_code", "pin_try_exceeded", "do_not_retry", 0, False, "Too many wrong PIN attempts"),
    ("stripe", "decline_code", "processing_error", "processing_error", 0, False, "Something went wrong while the card was being processed"),
    ("stripe", "decline_code", "reenter_transaction", "processing_error", 0, False, "Issuer couldn't process the payment; no reason given"),
    ("stripe", "decline_code", "restricted_card", "fraud_or_stolen", 0, False, "Card can't be used for this payment; it may have been reported lost or stolen"),
    ("stripe", "decline_code", "revocation_of_all_authorizations", "do_not_retry", 0, False, "Declined, no reason given (the code name means the cardholder revoked all standing authorisations)"),
    ("stripe", "decline_code", "revocation_of_authorization", "do_not_retry", 0, False, "Declined, no reason given (the code name means the cardholder revoked the authorisation for this merchant)"),
    ("stripe", "decline_code", "security_violation", "fraud_or_stolen", 0, False, "Declined, no reason given (code name: security violation)"),
    ("stripe", "decline_code", "service_not_allowed", "do_not_retry", 0, False, "Declined, no reason given (code name: service not allowed)"),
    ("stripe", "decline_code", "stolen_card", "fraud_or_stolen", 0, False, "Card has been reported stolen"),
    ("stripe", "decline_code", "stop_payment_order", "do_not_retry", 0, False, "Declined, no reason given (code name: stop-payment order)"),
    ("stripe", "decline_code", "testmode_decline", "invalid_card", 0, False, "A Stripe test card number was used for a real payment"),
    ("stripe", "decline_code", "transaction_not_allowed", "do_not_retry", 0, False, "Declined, no reason given (code name: transaction not allowed)"),
    ("stripe", "decline_code", "try_again_later", "network_error", 0, False, "Deprecated decline code (guidance now carried by advice_code): declined, no reason given"),
    ("stripe", "decline_code", "withdrawal_count_limit_exceeded", "insufficient_funds", 0, False, "Customer has gone over the card's balance or credit limit"),
    ("stripe", "decline_code", "mobile_device_authentication_required", "authentication_required", 0, False, "Declined because authentication on the customer's mobile device is required (tap-to-pay)"),
    ("stripe", "decline_code", "partner_generic_decline", "card_declined", 0, False, "Payment provider declined"),
    ("stripe", "decline_code", "invalid_customer_account", "invalid_card", 0, False, "Customer's account can't be charged"),
    ("stripe", "decline_code", "payment_limit_exceeded", "insufficient_funds", 0, False, "Order is above a limit on the customer's account"),
    ("stripe", "decline_code", "invalid_billing_agreement", "do_not_retry", 0, False, "Billing agreement invalid"),
    ("stripe", "decline_code", "invalid_business_account", "unknown", 0, False, "Merchant's business account is deactivated"),
    ("stripe", "decline_code", "partner_high_risk_customer", "fraud_or_stolen", 0, False, "Provider flagged the customer as high risk"),
    ("stripe", "decline_code", "compliance_violation", "do_not_retry", 0, False, "Breaks terms, programme rules or law"),
    ("stripe", "decline_code", "payment_disputed", "do_not_retry", 0, False, "Payment is under dispute"),
    ("stripe", "decline_code", "invalid_authorization", "do_not_retry", 0, False, "Authorisation missing or revoked"),
    ("stripe", "decline_code", "invalid_payment_information", "invalid_card", 0, False, "Payment details invalid"),
    ("stripe", "decline_code", "partner_payment_not_found", "unknown", 0, False, "Provider can't find the payment"),
    ("stripe", "decline_code", "expired_payment_information", "expired_card", 0, False, "Underlying instrument expired"),
    # stripe code
    ("stripe", "code", "card_declined", "card_declined", 0, False, "Card was declined; the error also carries decline_code with the issuer's reason"),
    ("stripe", "code", "card_decline_rate_limit_exceeded", "card_declined", 86400, False, "Too many declines on this card recently; it can only be charged again after 24 hours"),
    ("stripe", "code", "expired_card", "expired_card", 0, False, "Expired card - customer should correct the expiry date or pay with a different card"),
    ("stripe", "code", "incorrect_cvc", "invalid_card", 0, False, "CVC mismatch - customer should re-enter the code or pay with a different card"),
    ("stripe", "code", "incorrect_number", "invalid_card", 0, False, "Wrong card number - customer should re-enter it or pay with a different card"),
    ("stripe", "code", "incorrect_zip", "invalid_card", 0, False, "Postal-code mismatch - customer should correct it or pay with a different card"),
    ("stripe", "code", "incorrect_address", "invalid_card", 0, False, "Address mismatch - customer should correct it or pay with a different card"),
    ("stripe", "code", "invalid_cvc", "invalid_card", 0, False, "CVC not valid - customer should re-enter it or pay with a different card"),
    ("stripe", "code", "invalid_number", "invalid_card", 0, False, "Card number not valid - customer should re-enter it or pay with a different card"),
    ("stripe", "code", "invalid_expiry_month", "invalid_card", 0, False, "Expiry month not valid - customer should correct it or pay with a different card"),
    ("stripe", "code", "invalid_expiry_year", "invalid_card", 0, False, "Expiry year not valid - customer should correct it or pay with a different card"),
    ("stripe", "code", "postal_code_invalid", "invalid_card", 0, False, "Postal code in the request was not correct"),
    ("stripe", "code", "processing_error", "processing_error", 0, False, "Card processing hit an error; retry later or use another payment method"),
    ("stripe", "code", "authentication_required", "authentication_required", 0, False, "Payment needs authentication; an off-session customer must come back to complete it (with error_on_requires_action the customer should use a card that doesn't need it)"),
    ("stripe", "code", "insufficient_funds", "insufficient_funds", 0, False, "Customer's (bank) account doesn't have enough funds for this payment"),
    ("stripe", "code", "payment_intent_authentication_failure", "authentication_required", 0, False, "Authentication of the supplied payment method did not succeed; Stripe asks for another payment method before the PaymentIntent is retried"),
    ("stripe", "code", "setup_intent_authentication_failure", "authentication_required", 0, False, "Same as above for a SetupIntent"),
    ("stripe", "code", "payment_intent_action_required", "authentication_required", 0, False, "The payment method needs a customer action, but the request asked to error instead of prompting (error_on_requires_action)"),
    ("stripe", "code", "invoice_payment_intent_requires_action", "authentication_required", 0, False, "The invoice's payment needs an extra customer action; finish it through the invoice's PaymentIntent"),
    ("stripe", "code", "billing_invalid_mandate", "authentication_required", 0, False, "A subscription/invoice tried to charge a payment method with no active mandate; it must first be confirmed on-session"),
    ("stripe", "code", "payment_intent_payment_attempt_failed", "unknown", 0, False, "Most recent attempt on the PaymentIntent failed; the actual reason is in last_payment_error"),
    ("stripe", "code", "payment_method_provider_decline", "card_declined", 0, False, "Declined by the issuer or by the customer (non-card/wallet methods); Stripe asks for another payment method"),
    ("stripe", "code", "payment_method_customer_decline", "authentication_required", 0, False, "Customer declined/cancelled the payment in the provider's own flow"),
    ("stripe", "code", "payment_method_provider_timeout", "network_error", 0, False, "The provider timed out while processing the payment method"),
    ("stripe", "code", "payment_method_not_available", "network_error", 0, False, "The payment method/provider is not available for this payment right now"),
    ("stripe", "code", "lock_timeout", "network_error", 0, False, "Object is busy with another request; retry (serialise concurrent requests if frequent)"),
    ("stripe", "code", "rate_limit", "network_error", 0, False, "Request rate limit hit; retry with exponential backoff"),
    ("stripe", "code", "debit_not_authorized", "do_not_retry", 0, False, "Bank debit: the customer told their bank the debit was unauthorised / no mandate is held"),
    ("stripe", "code", "account_closed", "do_not_retry", 0, False, "Bank debit: the customer's bank account is closed"),
    ("stripe", "code", "no_account", "invalid_card", 0, False, "Bank debit: the customer's bank account could not be found"),
    # razorpay code
    ("razorpay", "code", "SERVER_ERROR", "processing_error", 0, False, "Failure on the processor side; also used in API error samples"),
    # razorpay decline_code
    ("razorpay", "decline_code", "amount_less_than_minimum_amount", "unknown", 0, False, "Amount is below the minimum the bank accepts (some banks charge a fixed fee) (merchant-side)"),
    ("razorpay", "decline_code", "authentication_failed", "authentication_required", 0, False, "3DS/OTP authentication did not succeed: wrong OTP/details, or the customer cancelled or closed the page at the OTP step"),
    ("razorpay", "decline_code", "authorisation_declined_by_psp", "card_declined", 0, False, "The customer's UPI app (PSP) refused the authorisation (PSP outage or a problem with the VPA)"),
    ("razorpay", "decline_code", "bank_account_invalid", "invalid_card", 0, False, "Bank account not valid (may have been closed by customer or bank)"),
    ("razorpay", "decline_code", "bank_account_validation_failed", "invalid_card", 0, False, "Third-party check of the bank account details failed"),
    ("razorpay", "decline_code", "bank_cutoff_in_progress", "network_error", 0, False, "Bank is in its periodic core-banking cutoff window"),
    ("razorpay", "decline_code", "bank_not_available", "network_error", 0, False, "Bank unavailable (downtime or technical issue)"),
    ("razorpay", "decline_code", "bank_not_enabled", "unknown", 0, False, "Chosen bank is not enabled for the merchant account (merchant config)"),
    ("razorpay", "decline_code", "bank_technical_error", "processing_error", 0, False, "Issuing bank's core-banking system errored or was down when the payment was tried"),
    ("razorpay", "decline_code", "beneficiary_account_does_not_exist", "unknown", 0, False, "Receiving (beneficiary) account does not exist (merchant-side)"),
    ("razorpay", "decline_code", "beneficiary_account_dormant", "unknown", 0, False, "Receiving (beneficiary) account is dormant (merchant-side)"),
    ("razorpay", "decline_code", "capture_failed", "processing_error", 0, False, "Bank authorised the payment but the capture step failed"),
    ("razorpay", "decline_code", "card_declined", "card_declined", 0, False, "Issuer declined after its own checks; the specific reason is not passed to Razorpay"),
    ("razorpay", "decline_code", "card_disabled_for_online_payments", "do_not_retry", 0, False, "Card has not been enabled by the customer for online/e-commerce use"),
    ("razorpay", "decline_code", "card_expired", "expired_card", 0, False, "Card is expired"),
    ("razorpay", "decline_code", "card_network_not_enabled", "unknown", 0, False, "Card network not enabled for the merchant (merchant config)"),
    ("razorpay", "decline_code", "card_not_enrolled", "authentication_required", 0, False, "Card not enrolled for 3-D Secure (or issuer doesn't support it), so it can't complete authentication"),
    ("razorpay", "decline_code", "card_number_invalid", "invalid_card", 0, False, "Card number doesn't belong to any known BIN/IIN"),
    ("razorpay", "decline_code", "card_type_invalid", "do_not_retry", 0, False, "Card type not allowed for this payment (e.g. credit card for mutual funds)"),
    ("razorpay", "decline_code", "collect_on_mcc_blocked", "unknown", 0, False, "NPCI blocks UPI collect requests for this merchant category (merchant config)"),
    ("razorpay", "decline_code", "collect_request_pending", "authentication_required", 0, False, "UPI collect request not yet approved by the customer (or callback not received)"),
    ("razorpay", "decline_code", "compliance_violation", "do_not_retry", 0, False, "Compliance/risk rule breached at customer or merchant level"),
    ("razorpay", "decline_code", "credit_failed", "unknown", 0, False, "Beneficiary bank refused the credit (TPV account mismatch or beneficiary-bank/partner issue)"),
    ("razorpay", "decline_code", "credit_limit_exceeded", "insufficient_funds", 0, False, "Cardless-EMI credit limit exceeded"),
    ("razorpay", "decline_code", "credit_limit_expired", "do_not_retry", 0, False, "Cardless-EMI credit limit has expired"),
    ("razorpay", "decline_code", "credit_limit_inactive", "do_not_retry", 0, False, "Cardless-EMI credit limit is inactive (customer action pending)"),
    ("razorpay", "decline_code", "credit_limit_not_approved", "do_not_retry", 0, False, "Cardless-EMI credit limit not approved"),
    ("razorpay", "decline_code", "credit_not_permitted", "unknown", 0, False, "Beneficiary bank did not allow the credit (TPV mismatch or bank issue)"),
    ("razorpay", "decline_code", "debit_declined", "card_declined", 0, False, "Customer's bank declined the debit, e.g. because the account is blocked"),
    ("razorpay", "decline_code", "debit_instrument_blocked", "do_not_retry", 0, False, "Card (or account) blocked by the issuer or by the customer"),
    ("razorpay", "decline_code", "debit_instrument_inactive", "do_not_retry", 0, False, "Card inactive or frozen (by issuer or customer)"),
    ("razorpay", "decline_code", "deemed_transaction", "unknown", 0, False, "Final status unknown to the acquirer until the next day"),
    ("razorpay", "decline_code", "duplicate_refund_id", "unknown", 0, False, "Two refunds used the same refund id"),
    ("razorpay", "decline_code", "duplicate_request", "unknown", 0, False, "Same payment request sent twice to the gateway (integration issue) (merchant-side)"),
    ("razorpay", "decline_code", "duplicate_rrn_found", "processing_error", 0, False, "Rare, temporary RRN collision with another payment"),
    ("razorpay", "decline_code", "emi_greater_than_max_amount", "do_not_retry", 0, False, "Cardless-EMI amount is above the customer's allowed maximum"),
    ("razorpay", "decline_code", "emi_plan_unavailable", "do_not_retry", 0, False, "Selected EMI plan no longer offered"),
    ("razorpay", "decline_code", "funds_blocked_by_mandate", "insufficient_funds", 0, False, "Funds are reserved by a one-time mandate and can't be used for this payment"),
    ("razorpay", "decline_code", "gateway_technical_error", "processing_error", 0, False, "Technical error or downtime at the gateway/partner bank"),
    ("razorpay", "decline_code", "incorrect_atm_pin", "invalid_card", 0, False, "Wrong ATM PIN (rare; UPI registration)"),
    ("razorpay", "decline_code", "incorrect_card_details", "invalid_card", 0, False, "Generic: some card detail (name, expiry, CVV...) entered wrongly"),
    ("razorpay", "decline_code", "incorrect_card_expiry_date", "invalid_card", 0, False, "Wrong card expiry date entered"),
    ("razorpay", "decline_code", "incorrect_cardholder_name", "invalid_card", 0, False, "Wrong cardholder name entered"),
    ("razorpay", "decline_code", "incorrect_cvv", "invalid_card", 0, False, "Wrong CVV entered"),
    ("razorpay", "decline_code", "incorrect_otp", "authentication_required", 0, False, "Wrong OTP entered"),
    ("razorpay", "decline_code", "incorrect_pin", "invalid_card", 0, False, "Wrong PIN entered"),
    ("razorpay", "decline_code", "input_validation_failed", "unknown", 0, False, "Request had invalid/missing parameters (see field/description) (integration error)"),
    ("razorpay", "decline_code", "insufficient_funds", "insufficient_funds", 0, False, "Customer's account doesn't hold enough funds"),
    ("razorpay", "decline_code", "international_transaction_not_allowed", "unknown", 0, False, "International payments not enabled (for the account or product) (merchant config)"),
    ("razorpay", "decline_code", "invalid_amount", "unknown", 0, False, "Amount/currency in the request is invalid or unsupported (integration error)"),
    ("razorpay", "decline_code", "invalid_currency", "unknown", 0, False, "Currency not supported or not enabled (merchant config)"),
    ("razorpay", "decline_code", "invalid_device", "authentication_required", 0, False, "UPI payment from a device that isn't bound to the account (device binding missing)"),
    ("razorpay", "decline_code", "invalid_email", "unknown", 0, False, "Customer email invalid"),
    ("razorpay", "decline_code", "invalid_mobile_number", "invalid_card", 0, False, "Wallet: mobile number not registered/invalid"),
    ("razorpay", "decline_code", "invalid_order_id", "unknown", 0, False, "Order id missing or invalid (integration error)"),
    ("razorpay", "decline_code", "invalid_request", "unknown", 0, False, "Merchant sent invalid information (integration error)"),
    ("razorpay", "decline_code", "invalid_response_from_gateway", "processing_error", 0, False, "Gateway returned an invalid response"),
    ("razorpay", "decline_code", "invalid_user_details", "invalid_card", 0, False, "Customer does not exist / invalid credentials"),
    ("razorpay", "decline_code", "invalid_vpa", "invalid_card", 0, False, "UPI ID (VPA) invalid or unregistered"),
    ("razorpay", "decline_code", "issuer_technical_error", "processing_error", 0, False, "Technical error at the issuer"),
    ("razorpay", "decline_code", "live_mode_not_enabled", "unknown", 0, False, "Live mode not enabled (test keys used for a live payment) (merchant config)"),
    ("razorpay", "decline_code", "mandate_creation_declined", "authentication_required", 0, False, "UPI Autopay/OTM mandate creation declined (mandate registration stage)"),
    ("razorpay", "decline_code", "mandate_creation_expired", "authentication_required", 0, False, "Mandate creation expired (mandate registration stage)"),
    ("razorpay", "decline_code", "mandate_creation_failed", "authentication_required", 0, False, "Mandate creation failed (mandate registration stage)"),
    ("razorpay", "decline_code", "mandate_creation_timeout", "authentication_required", 0, False, "Mandate creation timed out (mandate registration stage)"),
    ("razorpay", "decline_code", "mcc_amount_limit_exceeded", "do_not_retry", 0, False, "Amount is above the limit for this merchant category"),
    ("razorpay", "decline_code", "merchant_not_activated", "unknown", 0, False, "Merchant not activated at the gateway (merchant config)"),
    ("razorpay", "decline_code", "mismatch_in_transaction_details", "unknown", 0, False, "Merchant passed inconsistent transaction details (integration error)"),
    ("razorpay", "decline_code", "mobile_number_invalid", "invalid_card", 0, False, "Mobile number not mapped to the customer's bank account (UPI)"),
    ("razorpay", "decline_code", "order_already_paid", "unknown", 0, False, "Order already has a successful payment (never retry; reconcile)"),
    ("razorpay", "decline_code", "order_amount_mismatch", "unknown", 0, False, "Payment amount differs from the order amount (integration error)"),
    ("razorpay", "decline_code", "order_payment_method_mismatch", "unknown", 0, False, "Payment method differs from the one on the order (integration error)"),
    ("razorpay", "decline_code", "otp_attempts_exceeded", "authentication_required", 0, False, "Too many wrong OTPs; some issuers then block the card temporarily"),
    ("razorpay", "decline_code", "otp_expired", "authentication_required", 0, False, "OTP used after it expired"),
    ("razorpay", "decline_code", "payment_amount_tampered", "unknown", 0, False, "Amount was altered"),
    ("razorpay", "decline_code", "payment_cancelled", "authentication_required", 0, False, "Customer cancelled (or pressed back) during authentication. In e-mandate recurring debits it means the customer told the bank to cancel the debit"),
    ("razorpay", "decline_code", "payment_collect_request_expired", "authentication_required", 0, False, "UPI collect request expired before the customer approved it"),
    ("razorpay", "decline_code", "payment_declined", "card_declined", 0, False, "Issuer bank or gateway declined for business/technical reasons not shared with Razorpay"),
    ("razorpay", "decline_code", "payment_declined_due_to_high_traffic", "network_error", 0, False, "Bank can't serve requests due to peak traffic"),
    ("razorpay", "decline_code", "payment_failed", "card_declined", 0, False, "Bank/wallet gateway failed the payment without a specific code"),
    ("razorpay", "decline_code", "payment_method_not_enabled", "unknown", 0, False, "Payment method not enabled for the merchant (merchant config)"),
    ("razorpay", "decline_code", "payment_pending", "unknown", 0, False, "Bank/gateway marked the payment pending; may authorise later (late authorisation) (do not retry while pending)"),
    ("razorpay", "decline_code", "payment_pending_approval", "unknown", 0, False, "Awaiting internal maker-checker approval"),
    ("razorpay", "decline_code", "payment_risk_check_failed", "fraud_or_stolen", 0, False, "Declined by risk checks at Razorpay, gateway or issuer"),
    ("razorpay", "decline_code", "payment_session_expired", "authentication_required", 0, False, "Payment window left inactive until the session expired"),
    ("razorpay", "decline_code", "payment_timed_out", "network_error", 0, False, "Not completed within the time limit (usually ~10 min), or no response came back from the gateway; for e-mandate debits, the bank didn't debit in time"),
    ("razorpay", "decline_code", "pin_attempts_exceeded", "do_not_retry", 0, False, "Too many wrong PINs; card may be temporarily blocked"),
    ("razorpay", "decline_code", "pin_not_set", "authentication_required", 0, False, "No UPI PIN set on the account"),
    ("razorpay", "decline_code", "psp_app_not_available", "network_error", 0, False, "UPI app (PSP) down"),
    ("razorpay", "decline_code", "psp_app_not_supported", "do_not_retry", 0, False, "UPI app blocked/unsupported"),
    ("razorpay", "decline_code", "psp_not_available", "network_error", 0, False, "PSP down"),
    ("razorpay", "decline_code", "psp_not_registered", "authentication_required", 0, False, "PSP not registered on the customer's device"),
    ("razorpay", "decline_code", "record_not_found", "processing_error", 0, False, "Bank has no record of the payment (status check on intent payments)"),
    ("razorpay", "decline_code", "recurring_payment_not_enabled", "unknown", 0, False, "Recurring payments not enabled for the merchant (merchant config)"),
    ("razorpay", "decline_code", "refund_limit_crossed", "unknown", 0, False, "Refund amount limit crossed"),
    ("razorpay", "decline_code", "reqauth_mandate_not_acknowledged", "network_error", 0, False, "PSP didn't answer the mandate authorisation request (PSP downtime)"),
    ("razorpay", "decline_code", "request_timed_out", "network_error", 0, False, "Request timed out"),
    ("razorpay", "decline_code", "server_error", "processing_error", 0, False, "Technical error on Razorpay's servers"),
    ("razorpay", "decline_code", "transaction_daily_count_exceeded", "insufficient_funds", 0, False, "Card's daily number of transactions exceeded"),
    ("razorpay", "decline_code", "transaction_daily_limit_exceeded", "insufficient_funds", 0, False, "Card's daily amount limit exceeded"),
    ("razorpay", "decline_code", "transaction_frequency_limit_exceeded", "insufficient_funds", 0, False, "NPCI per-day UPI amount/frequency limit reached"),
    ("razorpay", "decline_code", "transaction_limit_exceeded", "insufficient_funds", 0, False, "Card credit/debit limit exceeded (high-value payments)"),
    ("razorpay", "decline_code", "transaction_on_vpa_restricted", "do_not_retry", 0, False, "UPI ID blocked temporarily or permanently by the PSP"),
    ("razorpay", "decline_code", "upi_app_technical_error", "processing_error", 0, False, "Technical error at the customer's UPI app"),
    ("razorpay", "decline_code", "upi_autopay_not_supported_on_psp", "do_not_retry", 0, False, "UPI Autopay not supported by the customer's UPI app"),
    ("razorpay", "decline_code", "upi_collect_not_enabled", "unknown", 0, False, "UPI collect flow not enabled for merchant (merchant config)"),
    ("razorpay", "decline_code", "upi_intent_not_enabled", "unknown", 0, False, "UPI intent flow not enabled for merchant (merchant config)"),
    ("razorpay", "decline_code", "user_not_eligible", "do_not_retry", 0, False, "Cardless-EMI eligibility (credit) check failed"),
    ("razorpay", "decline_code", "user_not_registered_for_netbanking", "do_not_retry", 0, False, "Customer's account isn't registered for netbanking"),
    ("razorpay", "decline_code", "verification_failed", "processing_error", 0, False, "Status-check verification failed; described as temporary"),
    ("razorpay", "decline_code", "vpa_resolution_failed", "processing_error", 0, False, "UPI network could not resolve/validate the VPA (technical failure at NPCI)"),
    ("razorpay", "decline_code", "invalid_otp", "authentication_required", 0, False, "Appears only in Razorpay's sample error object (description: authentication failed due to incorrect OTP); same meaning as incorrect_otp"),
    ("razorpay", "decline_code", "mandate_not_active", "do_not_retry", 0, False, "E-mandate debit: Mandate no longer active; customer or bank cancelled it. Customer must register a new mandate"),
    ("razorpay", "decline_code", "payment_mandate_not_active", "processing_error", 0, False, "E-mandate debit: Mandate not yet activated at the bank; retry after some time"),
    ("razorpay", "decline_code", "incorrect_ifsc", "invalid_card", 0, False, "E-mandate debit: Bank IFSC on the mandate is no longer valid; customer must re-register"),
    ("razorpay", "decline_code", "insufficient_fund", "insufficient_funds", 0, False, "Customer's account doesn't hold enough funds (spelling used on Razorpay's test-card page)"),
    # any provider visa_code
    ("", "visa_code", "04", "fraud_or_stolen", 0, True, "Pick up card (no fraud); Visa category 1: issuer will never approve"),
    ("", "visa_code", "07", "fraud_or_stolen", 0, True, "Pick up card, special condition (fraud account); Visa category 1: issuer will never approve"),
    ("", "visa_code", "12", "do_not_retry", 0, True, "Invalid transaction; Visa category 1: issuer will never approve"),
    ("", "visa_code", "14", "invalid_card", 0, True, "Invalid account / card number (no such number); Visa category 1: issuer will never approve"),
    ("", "visa_code", "15", "invalid_card", 0, True, "No such issuer; Visa category 1: issuer will never approve"),
    ("", "visa_code", "41", "fraud_or_stolen", 0, True, "Lost card, pick up; Visa category 1: issuer will never approve"),
    ("", "visa_code", "43", "fraud_or_stolen", 0, True, "Stolen card, pick up; Visa category 1: issuer will never approve"),
    ("", "visa_code", "46", "do_not_retry", 0, True, "Closed account; Visa category 1: issuer will never approve"),
    ("", "visa_code", "57", "do_not_retry", 0, True, "Transaction not permitted to cardholder; Visa category 1: issuer will never approve"),
    ("", "visa_code", "R0", "do_not_retry", 0, True, "Stop payment order (2026 wording: recurring only, merchant-level one-time stop); Visa category 1: issuer will never approve"),
    ("", "visa_code", "R1", "do_not_retry", 0, True, "Revocation of authorisation order (2026 wording: recurring only, stop all future payments at merchant/MCC level); Visa category 1: issuer will never approve"),
    ("", "visa_code", "R3", "do_not_retry", 0, True, "Revocation of all authorisations order (2026 wording: recurring only, PAN-level stop for all merchants); Visa category 1: issuer will never approve"),
    ("", "visa_code", "03", "card_declined", 0, False, "Invalid merchant (card/product restricted at this merchant or MCC); Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "19", "processing_error", 0, False, "Re-enter transaction; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "39", "invalid_card", 0, False, "No credit account; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "51", "insufficient_funds", 0, False, "Not sufficient funds; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "52", "invalid_card", 0, False, "No checking account; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "53", "invalid_card", 0, False, "No savings account; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "59", "fraud_or_stolen", 0, False, "Suspected fraud; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "61", "insufficient_funds", 0, False, "Exceeds approval/withdrawal amount limit; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "62", "fraud_or_stolen", 0, False, "Restricted card (e.g. invalid in region/country); Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "65", "insufficient_funds", 0, False, "Exceeds withdrawal frequency limit; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "75", "do_not_retry", 0, False, "Allowable number of PIN tries exceeded; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "78", "card_declined", 0, False, "Blocked, first use / special condition (card not activated or temporarily blocked); Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "83", "fraud_or_stolen", 0, False, "Fraud/security - blocked by Visa network fraud controls (Visa use only); Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "86", "processing_error", 0, False, "Cannot verify PIN; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "91", "network_error", 0, False, "Issuer or switch inoperative; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "93", "do_not_retry", 0, False, "Transaction cannot be completed - violation of law; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "96", "processing_error", 0, False, "System malfunction; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "5C", "do_not_retry", 0, False, "Transaction not supported / blocked by issuer (BIN/range rule); Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "9G", "do_not_retry", 0, False, "Blocked by cardholder (card controls) / contact cardholder; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "N3", "do_not_retry", 0, False, "Cash service not available; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "N4", "insufficient_funds", 0, False, "Cash request exceeds issuer or approved limit; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "Z5", "do_not_retry", 0, False, "Valid account but amount not supported; Visa category 2: issuer cannot approve now"),
    ("", "visa_code", "54", "expired_card", 0, False, "Expired card or expiry date missing; Visa category 3: fix the card data first"),
    ("", "visa_code", "55", "invalid_card", 0, False, "PIN incorrect or missing; Visa category 3: fix the card data first"),
    ("", "visa_code", "6P", "invalid_card", 0, False, "Verification failed (cardholder data does not match issuer records); Visa category 3: fix the card data first"),
    ("", "visa_code", "82", "invalid_card", 0, False, "Negative online CAM, dCVV, iCVV or CVV result; Visa category 3: fix the card data first"),
    ("", "visa_code", "N7", "invalid_card", 0, False, "Decline for CVV2 failure; Visa category 3: fix the card data first"),
    ("", "visa_code", "1A", "authentication_required", 0, False, "Additional customer authentication required (SCA); Visa category 4 (3 in Europe): generic decline"),
    ("", "visa_code", "70", "authentication_required", 0, False, "PIN data required; Visa category 4 (3 in Europe): generic decline"),
    ("", "visa_code", "01", "card_declined", 0, False, "Refer to card issuer; Visa category 4: generic decline"),
    ("", "visa_code", "05", "card_declined", 0, False, "Do not honor; Visa category 4: generic decline"),
    ("", "visa_code", "13", "do_not_retry", 0, False, "Invalid amount; Visa category 4: generic decline"),
    ("", "visa_code", "58", "do_not_retry", 0, False, "Transaction not permitted to terminal; Visa category 4: generic decline"),
    ("", "visa_code", "63", "fraud_or_stolen", 0, False, "Security violation; Visa category 4: generic decline"),
    # any provider mastercard_advice
    ("", "mastercard_advice", "01", "expired_card", 0, False, "New account information available (e.g. new expiry/number)"),
    ("", "mastercard_advice", "02", "card_declined", 0, False, "Cannot approve at this time, try again later"),
    ("", "mastercard_advice", "03", "do_not_retry", 0, True, "Do not try again; Mastercard charges for retries"),
    ("", "mastercard_advice", "04", "unknown", 0, False, "Token requirements not fulfilled for this token type (some processors label it 'Token not supported')"),
    ("", "mastercard_advice", "21", "do_not_retry", 0, True, "Payment cancellation / stop recurring payment (cardholder cancelled the recurring agreement); Mastercard charges for retries"),
    ("", "mastercard_advice", "24", "insufficient_funds", 3600, False, "Retry after 1 hour"),
    ("", "mastercard_advice", "25", "insufficient_funds", 86400, False, "Retry after 24 hours"),
    ("", "mastercard_advice", "26", "insufficient_funds", 172800, False, "Retry after 2 days"),
    ("", "mastercard_advice", "27", "insufficient_funds", 345600, False, "Retry after 4 days"),
    ("", "mastercard_advice", "28", "insufficient_funds", 518400, False, "Retry after 6 days"),
    ("", "mastercard_advice", "29", "insufficient_funds", 691200, False, "Retry after 8 days"),
    ("", "mastercard_advice", "30", "insufficient_funds", 864000, False, "Retry after 10 days"),
]

# Free-text fallback, tried in ascending priority (case-insensitive regular
# expressions): the reference's order 1-9. Invalid-detail patterns come before
# "expired" so that "expiration month is invalid" is invalid_card.
# (priority, category, pattern, description)
MESSAGE_RULES = [
    (10, "fraud_or_stolen", r"\bstolen\b|\blost\s+card\b|\bpick[\s-]?up\b|fraud|\brestricted\s+card\b|\bsecurity\s+violation\b|\b(?:black|block)[\s-]?list|\brisk\s+check",
     "Message mentions a stolen or lost card, pick-up, fraud, a restricted card, a security violation, a block list or a risk check"),
    (20, "do_not_retry", r"\brevo(?:ked|cation)\b|\bstop\s+payment\b|\bdo\s+not\s+(?:try\s+again|retry)\b|\bnot\s+(?:permitted|allowed)\b|\bmandate\s+(?:was\s+|has\s+been\s+)?cancell?ed\b",
     "Message says the authorisation was revoked, a payment was stopped, not to retry, or that the payment is not permitted"),
    (30, "authentication_required", r"\b3-?d[\s-]?secure\b|\b3ds\d?\b|authenticat|\botp\b|\bsca\b|\brequires?[\s_]+action\b",
     "Message asks for 3-D Secure, an OTP, SCA or another authentication step"),
    (40, "invalid_card", r"\b(?:invalid|incorrect)\s+(?:[\w'’]+\s+){0,2}?(?:card|number|cvv2?|cvc|expiry|expiration|month|year|zip|postal|account)\b"
     r"|\b(?:card|number|cvv2?|cvc|expiry|expiration|month|year|zip|postal\s+code|account)\b\s+(?:[\w'’]+\s+){0,2}?(?:is|was|are)\s+(?:invalid|incorrect)\b"
     r"|\bsecurity\s+code\b",
     "Message says a card detail (number, CVC, expiry, postal code, account) is invalid or incorrect"),
    (50, "expired_card", r"\bexpired\b|\bexpiry\s+date\s+(?:has\s+)?passed\b",
     "Message says the card has expired"),
    (60, "insufficient_funds", r"\binsufficient\s+funds?\b|\bnot\s+sufficient\s+funds?\b|\bnsf\b|\bexceed(?:s|ed)?\b.{0,40}?\blimit\b|\bcredit\s+limit\b|\bbalance\b",
     "Message mentions insufficient funds, an exceeded limit or the balance"),
    (70, "network_error", r"\btimed\s+out\b|\btime-?out\b|\bunavailable\b|\binoperative\b|\btry\s+again\s+later\b|\bhigh\s+traffic\b|\bconnection\b",
     "Message mentions a timeout, an unavailable or inoperative system, high traffic or a connection problem"),
    (80, "processing_error", r"\bprocessing\s+error\b|\bsystem\s+malfunction\b|\btechnical\s+error\b|\bgateway\s+error\b|\bre-?\s?enter\b",
     "Message mentions a processing, technical or gateway error, or asks to re-enter the payment"),
    (90, "card_declined", r"\bdo\s+not\s+hono(?:u)?r\b|\bdeclined\b|\bgeneric\s+decline\b|\brefer\s+to\s+(?:the\s+)?(?:card\s+)?issuer\b|\bcall\s+(?:the\s+|your\s+)?(?:card\s+)?issuer\b",
     "Message says the card was declined, do not honour, or to call or refer to the issuer"),
]


def _rows(ClassificationRule):
    for provider, field, value, category, delay, network_stop, description in CODE_RULES:
        yield ClassificationRule(
            organization=None, provider=provider, field=field, value=value, priority=CODE_PRIORITY,
            category=category, action=ACTIONS[category], min_delay_seconds=delay,
            network_stop=network_stop, description=description,
        )
    for priority, category, pattern, description in MESSAGE_RULES:
        yield ClassificationRule(
            organization=None, provider="", field="message", value=pattern, priority=priority,
            category=category, action=ACTIONS[category], min_delay_seconds=0,
            network_stop=False, description=description,
        )


def add_default_rules(apps, schema_editor):
    ClassificationRule = apps.get_model("recovery", "ClassificationRule")
    ClassificationRule.objects.bulk_create(_rows(ClassificationRule))


def remove_default_rules(apps, schema_editor):
    ClassificationRule = apps.get_model("recovery", "ClassificationRule")
    shipped = {}
    for provider, field, value, *_rest in CODE_RULES:
        shipped.setdefault((provider, field), []).append(value)
    shipped[("", "message")] = [pattern for _priority, _category, pattern, _description in MESSAGE_RULES]
    for (provider, field), values in shipped.items():
        ClassificationRule.objects.filter(
            organization__isnull=True, provider=provider, field=field, value__in=values
        ).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("recovery", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(add_default_rules, remove_default_rules),
    ]
