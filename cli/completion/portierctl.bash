# bash completion for portierctl; rule and set names come from the running portierd.
_portierctl() {
  local cur prev cmd
  # The global option comes before the command; complete the rest as if it were not there.
  if [[ ${COMP_WORDS[1]-} == --no-ask-password ]] && ((COMP_CWORD > 1)); then
    COMP_WORDS=("${COMP_WORDS[0]}" "${COMP_WORDS[@]:2}")
    COMP_CWORD=$((COMP_CWORD - 1))
  fi
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  cmd=${COMP_WORDS[1]}
  if ((COMP_CWORD == 1)); then
    COMPREPLY=($(compgen -W "$(portierctl __complete commands 2>/dev/null) --help --no-ask-password" -- "$cur"))
    return
  fi
  case $cmd in
    enable|disable)
      COMPREPLY=($(compgen -W "$(portierctl __complete rules 2>/dev/null) --permanent" -- "$cur")) ;;
    set)
      if ((COMP_CWORD == 2)); then
        COMPREPLY=($(compgen -W "add del list" -- "$cur"))
      elif ((COMP_CWORD == 3)); then
        COMPREPLY=($(compgen -W "$(portierctl __complete sets 2>/dev/null)" -- "$cur"))
      elif [[ $prev == --file ]]; then
        COMPREPLY=($(compgen -f -- "$cur") $(compgen -W "-" -- "$cur"))
      elif [[ $prev == --timeout ]]; then
        COMPREPLY=()
      elif [[ ${COMP_WORDS[2]} == list ]]; then
        COMPREPLY=($(compgen -W "--json" -- "$cur"))
      elif [[ ${COMP_WORDS[2]} == del ]]; then
        COMPREPLY=($(compgen -W "--file --json" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "--file --timeout --json" -- "$cur"))
      fi ;;
    apply|check|diff)
      if [[ $prev == --confirm ]]; then COMPREPLY=(); return; fi
      COMPREPLY=($(compgen -f -X '!*.toml' -- "$cur") $(compgen -d -- "$cur") \
                 $(compgen -W "--confirm --nft --json" -- "$cur")) ;;
    show)
      if [[ $prev == --policy ]]; then
        COMPREPLY=($(compgen -f -X '!*.toml' -- "$cur") $(compgen -d -- "$cur"))
      else
        COMPREPLY=($(compgen -W "--policy" -- "$cur"))
      fi ;;
    panic) COMPREPLY=($(compgen -W "on off --keep-established" -- "$cur")) ;;
    allow) COMPREPLY=($(compgen -W "tcp/ udp/ --from --to --for --out" -- "$cur")) ;;
    explain) COMPREPLY=($(compgen -W "tcp udp icmp icmpv6 -> in out forward --policy --json --verbose" -- "$cur")) ;;
    status|rules|ports|monitor) COMPREPLY=($(compgen -W "--json --exact" -- "$cur")) ;;
  esac
}
complete -o filenames -F _portierctl portierctl
