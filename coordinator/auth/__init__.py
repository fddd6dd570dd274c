"""Authentication and authorisation: who is calling (``principal``) and what they may do
(``rbac``). Sessions and CSRF tokens live in ``sessions``; robot logins in
``robot_login``; registry tokens for a caller in ``token_service``."""
