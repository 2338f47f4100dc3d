<?php
// The echo bot of mod_component_http's README, answering only requests
// signed with COMPONENT_POST_SECRET (xmpp-lambda's signed requests).
// Run: COMPONENT_POST_SECRET=... php -S 127.0.0.1:8080 echo_bot.php

// True when the request carries a valid signature of $body by $secret.
function xmpp_lambda_verified(string $secret, string $body): bool
{
    $timestamp = $_SERVER['HTTP_X_XMPP_LAMBDA_TIMESTAMP'] ?? '';
    $signature = $_SERVER['HTTP_X_XMPP_LAMBDA_SIGNATURE'] ?? '';
    if ($secret === '' || !ctype_digit($timestamp) || abs(time() - (int) $timestamp) > 300) {
        return false; // no secret, no timestamp, or a replay (over 5 minutes away)
    }
    $expected = 'v1=' . hash_hmac('sha256', "$timestamp.$body", $secret);
    return hash_equals($expected, $signature); // constant-time
}

// Receive and check the message JSON
$post_data = file_get_contents('php://input');
if (!xmpp_lambda_verified((string) getenv('COMPONENT_POST_SECRET'), $post_data)) {
    http_response_code(401);
    exit;
}
$received = json_decode($post_data)->body ?? '';

// Send response
header('Content-Type: application/json');
echo json_encode(array(
        'body' => "Did you say $received?"
));
