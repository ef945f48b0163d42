// The token field in every page's header: stored in localStorage, sent as `Authorization: Bearer`.
import { getToken, setToken } from "./api.js";

const form = document.getElementById("token-form");
const input = document.getElementById("token");
input.value = getToken();
form.addEventListener("submit", (event) => {
  event.preventDefault();
  setToken(input.value.trim());
  document.getElementById("token-help").textContent = input.value.trim() ? "token saved" : "token cleared";
});
