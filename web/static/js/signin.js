// The sign-in form: posts to the JSON API (which sets the session cookie), then goes on.

import { rememberTimeZone } from "./shell.js";

rememberTimeZone();

const form = document.getElementById("signin-form");
const error = form.querySelector("[data-form-error]");
const show = (text) => {
  error.textContent = text;
  error.hidden = !text;
};

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = form.elements.email.value.trim();
  const password = form.elements.password.value;
  if (!email || !password) {
    show("Enter your email and password.");
    (email ? form.elements.password : form.elements.email).focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  show("");
  try {
    const response = await fetch("/api/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ email, password }),
    });
    if (response.ok) {
      window.location.assign(form.dataset.next || "/");
      return;
    }
    let detail = "";
    try {
      detail = (await response.json()).detail || "";
    } catch (ignored) {
      detail = "";
    }
    if (response.status === 401) show("Wrong email or password.");
    else if (response.status === 429) show("Too many attempts. Wait a minute, then try again.");
    else show(detail || `Sign-in failed (${response.status}).`);
    form.elements.password.select();
  } catch (failure) {
    show("Could not reach the server. Check your connection.");
  }
  button.disabled = false;
});
