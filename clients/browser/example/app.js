// The example single-page app: sign in with a key the page cannot export, call its API with
// DPoP-bound access tokens, present the key-bound ID Token, survive a reload, sign out.
// Served by `keybound demo --spa`; /config.json says where the OP and the API are.
import { KeyboundClient } from '/keybound-browser/index.js';

const $ = (id) => document.getElementById(id);
const config = await (await fetch('/config.json')).json();
const home = `${location.origin}/`;

const kb = await KeyboundClient.create({
  issuer: config.issuer,
  clientId: config.clientId,
  redirectUri: home,
  scope: 'openid profile offline_access',
  postLogoutRedirectUri: home,
});
// what an injected script would find first: the demo leaves the client reachable on purpose,
// so its tests can play the attacker with everything the app holds
window.keybound = kb;

async function show(el, response) {
  const text = await response.text();
  el.textContent = response.ok ? text : `HTTP ${response.status}: ${text}`;
}

try {
  const q = new URLSearchParams(location.search);
  if (q.has('code') || q.has('error')) {
    await kb.handleCallback(location.href);
    history.replaceState(null, '', home);
  }
  const user = await kb.resume();
  $('status').textContent = user ? `signed in as ${user.sub}` : 'signed out';
  $('sign-in').hidden = Boolean(user);
  for (const id of ['call-api', 'present', 'sign-out']) $(id).hidden = !user;
} catch (e) {
  $('status').textContent = 'signed out';
  $('sign-in').hidden = false;
  $('error').textContent = `${e.code ?? e.name}: ${e.message}`;
}

$('sign-in').onclick = () => kb.signIn({ resource: config.api });
$('call-api').onclick = async () => show($('api-result'), await kb.fetch(`${config.api}/orders`));
$('present').onclick = async () => show($('present-result'), await kb.present(`${config.api}/me`));
$('sign-out').onclick = () => kb.signOut();
