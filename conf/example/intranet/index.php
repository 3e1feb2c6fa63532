<?php
// Shows what mod_auth_scalekit passes to PHP after a login: REMOTE_USER, AUTH_TYPE
// and one SCALEKIT_CLAIM_<name> variable per ID token claim.
$names = ['REMOTE_USER', 'AUTH_TYPE'];
$claim_names = array_filter(
    array_keys($_SERVER),
    fn($name) => str_starts_with($name, 'SCALEKIT_CLAIM_')
);
sort($claim_names);
$names = array_merge($names, $claim_names);

header('Content-Type: text/html; charset=utf-8');
header('Cache-Control: no-store');
?>
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Intranet (PHP)</title>
</head>
<body>
<h1>Intranet (PHP)</h1>
<table>
<?php foreach ($names as $name): ?>
<tr><th><?= htmlspecialchars($name) ?></th><td><?= htmlspecialchars((string)($_SERVER[$name] ?? '')) ?></td></tr>
<?php endforeach; ?>
</table>
</body>
</html>
